//! [`NodeKonnector`]: an installed Cozy konnector as a Gleaner
//! [`Konnector`], so the scheduler, vault, retries, 2FA and commit drive it
//! like any other.
//!
//! One run: check the installed script is the one installed, serve the
//! stack API ([`crate::stack`]) and the egress proxy ([`crate::proxy`]) on
//! loopback, start `node index.js` ([`crate::process`]), follow its output
//! and its second-factor requests, then stage what it wrote. Whatever ends
//! the run (exit, error, time limit, a dropped future), the process group
//! is killed and both servers stop.

use std::path::PathBuf;

use async_trait::async_trait;
use gleaner_framework::{
    ErrorCode, Konnector, KonnectorError, Manifest, Result, RunContext, Secret, TwoFactorKind,
};
use serde_json::{Map, Value, json};

use crate::install::{ENTRY_FILE, Installed, sha256_of};
use crate::process::{Launch, LogLine, NodeProcess, Output, node_binary, outcome};
use crate::proxy::{EgressProxy, ProxyPolicy};
use crate::stack::docs::FILES;
use crate::stack::{Stack, StackConfig, StackEvent};

/// How many lines of the konnector's error output a crash report quotes.
const STDERR_TAIL: usize = 8;

/// How long the output may stay open after the konnector exited.
const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// An installed Cozy Node konnector.
pub struct NodeKonnector {
    installed: Installed,
    manifest: Manifest,
    scratch: PathBuf,
    /// The script's SHA-256 by its size and modification time: hashing an
    /// 8 MiB bundle took a fifth of Gleaner's CPU per run.
    checksum: std::sync::Mutex<Option<(u64, std::time::SystemTime, String)>>,
}

impl NodeKonnector {
    /// The konnector of an installed build. `scratch` is where runs get
    /// their working folders.
    pub fn new(installed: Installed, scratch: PathBuf) -> Result<Self> {
        let manifest = installed
            .manifest
            .to_gleaner(installed.record.timeout_secs)?;
        Ok(Self {
            installed,
            manifest,
            scratch,
            checksum: std::sync::Mutex::new(None),
        })
    }

    /// The script's SHA-256, hashed again (off the async workers) only when
    /// its size or modification time changed.
    async fn checksum(&self, script: &std::path::Path) -> std::io::Result<String> {
        let meta = std::fs::metadata(script)?;
        let stamp = (meta.len(), meta.modified()?);
        if let Ok(cached) = self.checksum.lock()
            && let Some((len, modified, sha)) = cached.as_ref()
            && (*len, *modified) == stamp
        {
            return Ok(sha.clone());
        }
        let path = script.to_owned();
        let sha = tokio::task::spawn_blocking(move || sha256_of(&path))
            .await
            .map_err(std::io::Error::other)??;
        if let Ok(mut cached) = self.checksum.lock() {
            *cached = Some((stamp.0, stamp.1, sha.clone()));
        }
        Ok(sha)
    }

    /// The installed build.
    pub fn installed(&self) -> &Installed {
        &self.installed
    }
}

/// What the konnector printed that decides the outcome.
#[derive(Default)]
struct Seen {
    /// The run's token, masked in every line before anything reads it.
    token: String,
    last_critical: Option<LogLine>,
    last_error: Option<LogLine>,
    stderr: Vec<String>,
    lines: u64,
}

impl Seen {
    fn take(&mut self, output: Output, ctx: &RunContext) {
        let mask = |text: &mut String| {
            if !self.token.is_empty() && text.contains(self.token.as_str()) {
                *text = text.replace(self.token.as_str(), gleaner_framework::redact::MASK);
            }
        };
        let output = match output {
            Output::Log(mut line) => {
                mask(&mut line.message);
                Output::Log(line)
            }
            Output::Text(mut t) => {
                mask(&mut t);
                Output::Text(t)
            }
            Output::Stderr(mut t) => {
                mask(&mut t);
                Output::Stderr(t)
            }
        };
        match output {
            Output::Log(line) => {
                self.lines += 1;
                let message = line.message.as_str();
                match line.level.as_str() {
                    "debug" => tracing::debug!(target: "konnector", "{message}"),
                    "info" => {
                        tracing::info!(target: "konnector", "{message}");
                        ctx.progress(self.lines, None, message.to_owned());
                    }
                    "warning" | "warn" => tracing::warn!(target: "konnector", "{message}"),
                    "error" => {
                        tracing::warn!(target: "konnector", level = "error", "{message}");
                        self.last_error = Some(line);
                    }
                    "critical" => {
                        tracing::warn!(target: "konnector", level = "critical", "{message}");
                        self.last_critical = Some(line);
                    }
                    other => tracing::info!(target: "konnector", level = other, "{message}"),
                }
            }
            Output::Text(text) => tracing::debug!(target: "konnector", "stdout: {text}"),
            Output::Stderr(text) => {
                tracing::debug!(target: "konnector", "stderr: {text}");
                if self.stderr.len() == STDERR_TAIL {
                    self.stderr.remove(0);
                }
                self.stderr.push(text);
            }
        }
    }
}

fn failed(message: String) -> KonnectorError {
    KonnectorError::new(ErrorCode::UnknownError, message)
}

#[async_trait]
impl Konnector for NodeKonnector {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn run(&self, ctx: &mut RunContext) -> Result<()> {
        let script = self.installed.dir.join(ENTRY_FILE);
        // The record as it is now: a reinstall while a daemon runs brings
        // its new script, checksum and allow-list.
        let record = crate::install::load(&self.installed.dir)
            .map(|i| i.record)
            .map_err(|e| {
                KonnectorError::new(
                    ErrorCode::ManifestInvalid,
                    format!("the installed konnector does not load ({e}); install it again"),
                )
            })?;
        let sha = self.checksum(&script).await.map_err(|e| {
            KonnectorError::new(
                ErrorCode::ManifestInvalid,
                format!(
                    "cannot read {}: {e}; install the konnector again",
                    script.display()
                ),
            )
        })?;
        if sha != record.sha256 {
            return Err(KonnectorError::new(
                ErrorCode::ManifestInvalid,
                format!(
                    "{} changed since it was installed; install the konnector again",
                    script.display()
                ),
            ));
        }
        let cozy = &self.installed.manifest;
        // The run's token is masked in the konnector's output here, line by
        // line, rather than registered with the process-wide redactor like
        // a `Secret`: a daemon makes one per run, and that list only grows.
        let token = zeroize::Zeroizing::new(hex::encode(rand::random::<[u8; 32]>()));
        let mut auth = Map::new();
        for (name, spec) in &self.manifest.fields {
            let value = if spec.kind.is_secret() {
                ctx.secret(name).ok().map(|s| s.expose().to_owned())
            } else {
                ctx.field(name).ok().map(str::to_owned)
            };
            if let Some(v) = value {
                auth.insert(name.clone(), Value::String(v));
            }
        }
        let workdir = crate::process::scratch_dir(&self.scratch).map_err(|e| {
            failed(format!(
                "cannot make a working folder in {}: {e}",
                self.scratch.display()
            ))
        })?;
        let uploads = workdir.path().join(".uploads");
        let state = ctx.state().clone();
        let mut stack = Stack::start(
            StackConfig {
                slug: cozy.slug.clone(),
                account_id: ctx.account_id().to_owned(),
                auth,
                data: state,
                doctypes: cozy.doctypes.clone(),
                stored: ctx.stored_documents(),
                files_root: ctx.file_store().root().to_owned(),
                account_folder: ctx.account_folder().to_owned(),
                uploads,
            },
            token.to_string(),
        )
        .await?;
        let proxy = EgressProxy::start(ProxyPolicy {
            allow: record.allow_hosts.clone(),
            always_allow: Vec::new(),
        })
        .await
        .map_err(|e| failed(format!("cannot start the egress proxy: {e}")))?;
        let folder_id = stack
            .shared()
            .files
            .lock()
            .map(|f| f.account_dir_id())
            .map_err(|_| failed("files lock".into()))?;
        let fields = json!({
            "konnector": cozy.slug,
            "account": ctx.account_id(),
            "folder_to_save": folder_id,
        });
        let mut env = vec![
            ("COZY_URL".to_owned(), stack.url()),
            ("COZY_CREDENTIALS".to_owned(), token.to_string()),
            ("COZY_FIELDS".to_owned(), fields.to_string()),
            ("COZY_PARAMETERS".to_owned(), cozy.parameters.to_string()),
            ("COZY_LANGUAGE".to_owned(), "node".to_owned()),
            ("COZY_LOCALE".to_owned(), "en".to_owned()),
            (
                "COZY_TIME_LIMIT".to_owned(),
                self.manifest.timeout_secs.to_string(),
            ),
            ("COZY_JOB_ID".to_owned(), ctx.run_id().to_owned()),
            (
                "COZY_JOB_MANUAL_EXECUTION".to_owned(),
                ctx.attended().to_string(),
            ),
            ("COZY_TRIGGER_ID".to_owned(), ctx.account_id().to_owned()),
        ];
        for var in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            env.push((var.to_owned(), proxy.url()));
        }
        let mut process = NodeProcess::start(&Launch {
            node: node_binary(),
            script,
            workdir: workdir.path().to_owned(),
            env,
        })?;
        let mut output = process
            .take_output()
            .ok_or_else(|| failed("the konnector's output is not readable".into()))?;
        let mut seen = Seen {
            token: token.to_string(),
            ..Seen::default()
        };
        let mut output_done = false;
        let mut failure: Option<KonnectorError> = None;
        // The exit is awaited beside the output: `wait` kills the group, so
        // a child left holding stdout cannot keep the run open; a pipe held
        // by a process outside the group gets a short grace.
        let mut status: Option<std::process::ExitStatus> = None;
        let mut exited = false;
        let drain = tokio::time::sleep(DRAIN_GRACE);
        tokio::pin!(drain);
        while !(exited && output_done) {
            tokio::select! {
                out = output.recv(), if !output_done => match out {
                    Some(o) => seen.take(o, ctx),
                    None => output_done = true,
                },
                Some(StackEvent::TwoFactorAsked { kind, retry }) = stack.next_event(), if !exited => {
                    if retry {
                        tracing::info!("the konnector says the last code was wrong");
                    }
                    match ask(ctx, kind, &mut output, &mut seen, &mut output_done).await {
                        Some(Ok(code)) => {
                            if let Ok(mut account) = stack.shared().account.lock() {
                                account.answer(code.expose());
                            }
                        }
                        Some(Err(e)) => {
                            failure = Some(e);
                            process.kill_group();
                        }
                        None => {}
                    }
                },
                st = process.wait(), if !exited => {
                    status = st.ok();
                    exited = true;
                    drain.as_mut().reset(tokio::time::Instant::now() + DRAIN_GRACE);
                },
                () = &mut drain, if exited && !output_done => {
                    tracing::warn!("the konnector's output stayed open after it exited; stopped reading it");
                    output_done = true;
                },
            }
        }
        stack.stop();
        let contacts = proxy.contacts();
        let refused = proxy.refused();
        drop(proxy);
        for c in &contacts {
            tracing::info!(host = %c.host, port = c.port, tunnels = c.tunnels, requests = c.requests, refused = c.refused, "host contacted through the proxy");
        }
        let unknown = stack.unknown_routes();
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(mut e) = outcome(
            seen.last_critical.as_ref(),
            seen.last_error.as_ref(),
            status,
        ) {
            if !refused.is_empty() {
                let hosts: Vec<String> = refused
                    .iter()
                    .map(|c| format!("{}:{}", c.host, c.port))
                    .collect();
                return Err(KonnectorError::new(
                    ErrorCode::HostNotAllowed,
                    format!(
                        "the konnector tried to reach {}, which its allow-list does not name: Gleaner's proxy refused it ({})",
                        hosts.join(", "),
                        e.message
                    ),
                ));
            }
            if seen.last_critical.is_none() && seen.last_error.is_none() && !seen.stderr.is_empty()
            {
                e.message = format!(
                    "{}; its last error output: {}",
                    e.message,
                    seen.stderr.join(" | ")
                );
            }
            if !unknown.is_empty() {
                e.message = format!(
                    "{} (it called stack API routes Gleaner does not serve: {})",
                    e.message,
                    unknown.join(", ")
                );
            }
            return Err(e);
        }
        if !refused.is_empty() {
            ctx.warn(format!(
                "Gleaner's proxy refused {} host(s) outside the allow-list",
                refused.len()
            ));
        }
        stage(ctx, &stack).await
    }
}

/// Asks the person for a code while the konnector polls, still reading its
/// output. `None`: the konnector ended meanwhile.
async fn ask(
    ctx: &mut RunContext,
    kind: TwoFactorKind,
    output: &mut tokio::sync::mpsc::Receiver<Output>,
    seen: &mut Seen,
    output_done: &mut bool,
) -> Option<Result<Secret>> {
    let mut lines = Vec::new();
    let answer = {
        let question = ctx.two_factor(kind, None);
        tokio::pin!(question);
        loop {
            tokio::select! {
                a = &mut question => break Some(a),
                out = output.recv(), if !*output_done => match out {
                    Some(o) => lines.push(o),
                    None => {
                        *output_done = true;
                        break None;
                    }
                },
            }
        }
    };
    for line in lines {
        seen.take(line, ctx);
    }
    answer
}

/// Stages what the konnector wrote: documents, uploaded files, and its
/// account `data` as the konnector state.
async fn stage(ctx: &mut RunContext, stack: &Stack) -> Result<()> {
    let uploads = stack
        .shared()
        .files
        .lock()
        .map(|f| f.uploads.clone())
        .map_err(|_| failed("files lock".into()))?;
    let created_dirs: Vec<String> = stack
        .shared()
        .files
        .lock()
        .map(|f| f.created_dirs().to_vec())
        .map_err(|_| failed("files lock".into()))?;
    for dir in created_dirs {
        let path = ctx.file_store().absolute(&dir);
        std::fs::create_dir_all(&path).map_err(|e| {
            KonnectorError::new(
                ErrorCode::SaveFileFailed,
                format!("cannot create {}: {e}", path.display()),
            )
        })?;
    }
    let docs = stack.shared().docs.lock().await;
    for (doctype, id, doc) in docs.changed() {
        if doc.deleted {
            ctx.delete_json(doctype, doc.key.clone());
            continue;
        }
        let mut data = doc.data.clone();
        if doctype == FILES
            && let Some(upload) = uploads.get(id)
        {
            let bytes = std::fs::read(&upload.temp).map_err(|e| {
                KonnectorError::new(
                    ErrorCode::SaveFileFailed,
                    format!("the upload of {} is gone: {e}", upload.name),
                )
            })?;
            let info = ctx.stage_file(
                &upload.rel_dir,
                &upload.name,
                &bytes,
                &upload.mime,
                &upload.name,
            )?;
            if let Some(obj) = data.as_object_mut() {
                obj.insert("path".into(), Value::String(info.rel_path.clone()));
            }
            ctx.save_json(doctype, info.rel_path, Some(id.to_owned()), &data)?;
            continue;
        }
        ctx.save_json(doctype, doc.key.clone(), Some(id.to_owned()), &data)?;
    }
    drop(docs);
    let data = stack
        .shared()
        .account
        .lock()
        .map(|a| a.data())
        .map_err(|_| failed("account lock".into()))?;
    ctx.set_state(data);
    Ok(())
}
