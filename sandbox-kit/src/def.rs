//! How a konnector folder declares its sandbox, and what a started one
//! hands back.

use std::any::Any;
use std::future::Future;
use std::io;
use std::pin::Pin;

/// A named behaviour of a sandbox (normal, maintenance, rate limited...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScenarioInfo {
    /// The name, kebab-case (`changed-markup`).
    pub name: &'static str,
    /// One line saying what it does.
    pub about: &'static str,
}

/// How to start a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// The scenario's name; `None`: the first one the definition lists.
    pub scenario: Option<String>,
    /// The port on 127.0.0.1; `None`: any free port.
    pub port: Option<u16>,
}

/// What starting a sandbox returns.
pub type StartFuture = Pin<Box<dyn Future<Output = io::Result<RunningSandbox>> + Send>>;

/// A konnector's sandbox, as its folder's `sandbox::definition()` declares
/// it: the registry, `gleaner demo` and `gleaner sandbox` start it through
/// this.
#[derive(Debug, Clone, Copy)]
pub struct SandboxDef {
    /// The konnector's slug.
    pub slug: &'static str,
    /// Its scenarios; the first is the default (conventionally `normal`).
    pub scenarios: &'static [ScenarioInfo],
    /// Starts it. Called through [`SandboxDef::launch`], which checks the
    /// scenario's name first.
    pub start: fn(StartOptions) -> StartFuture,
}

impl SandboxDef {
    /// The scenario called `name`.
    pub fn scenario(&self, name: &str) -> Option<&'static ScenarioInfo> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    /// The scenarios' names, in order.
    pub fn scenario_names(&self) -> Vec<&'static str> {
        self.scenarios.iter().map(|s| s.name).collect()
    }

    /// Starts the sandbox; an unknown scenario is an `InvalidInput` error
    /// listing the known ones.
    pub fn launch(&self, options: StartOptions) -> StartFuture {
        if let Some(name) = &options.scenario
            && self.scenario(name).is_none()
        {
            let message = format!(
                "the {} sandbox has no scenario `{name}`; its scenarios are: {}",
                self.slug,
                self.scenario_names().join(", ")
            );
            return Box::pin(
                async move { Err(io::Error::new(io::ErrorKind::InvalidInput, message)) },
            );
        }
        (self.start)(options)
    }
}

/// A started sandbox: where it listens and the account fields that log in
/// to it (demo credentials, meant to be shown).
pub struct RunningSandbox {
    /// The base URL on loopback (`http://127.0.0.1:PORT`), for an
    /// account's `--endpoint`.
    pub base_url: String,
    /// Non-secret fields of a demo account.
    pub fields: Vec<(String, String)>,
    /// Secret fields of a demo account.
    pub secrets: Vec<(String, String)>,
    /// The scenario it runs.
    pub scenario: String,
    /// Keeps the server alive; dropping it stops the server.
    pub guard: Box<dyn Any + Send>,
}

impl std::fmt::Debug for RunningSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSandbox")
            .field("base_url", &self.base_url)
            .field("scenario", &self.scenario)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIOS: &[ScenarioInfo] = &[
        ScenarioInfo {
            name: "normal",
            about: "works",
        },
        ScenarioInfo {
            name: "broken",
            about: "does not",
        },
    ];

    fn start(options: StartOptions) -> StartFuture {
        Box::pin(async move {
            Ok(RunningSandbox {
                base_url: "http://127.0.0.1:1".into(),
                fields: Vec::new(),
                secrets: Vec::new(),
                scenario: options.scenario.unwrap_or_else(|| "normal".into()),
                guard: Box::new(()),
            })
        })
    }

    #[tokio::test]
    async fn launch_checks_the_scenario() {
        let def = SandboxDef {
            slug: "demo",
            scenarios: SCENARIOS,
            start,
        };
        assert_eq!(def.scenario_names(), ["normal", "broken"]);
        let running = def.launch(StartOptions::default()).await.expect("start");
        assert_eq!(running.scenario, "normal");
        let err = def
            .launch(StartOptions {
                scenario: Some("nope".into()),
                port: None,
            })
            .await
            .expect_err("unknown");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("normal, broken"), "{err}");
    }
}
