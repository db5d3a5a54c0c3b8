// Gleaner's one script: live updates of an account page (progress, and the
// second-factor prompt at once) from server-sent events. Every page works
// without it; with it, nothing has to be reloaded by hand.
"use strict";
// The stream opens once the page has loaded: a stream opened before keeps
// the page "loading" for as long as it lasts.
window.addEventListener("load", () => {
  const live = document.querySelector("[data-events]");
  if (!live || !window.EventSource) return;
  const rendered = live.getAttribute("data-state") || "";
  const source = new EventSource(live.getAttribute("data-events"));
  source.addEventListener("progress", (event) => {
    let p;
    try { p = JSON.parse(event.data); } catch (_) { return; }
    const bar = document.getElementById("job-progress");
    const text = document.getElementById("job-progress-text");
    if (bar && p.total) { bar.max = p.total; bar.value = p.done; }
    if (text) text.textContent = p.message || "";
  });
  source.addEventListener("state", (event) => {
    // The newest run changed state (it started, finished, or waits for a
    // code): the server renders the new page, prompt included.
    if (event.data !== rendered) { source.close(); window.location.reload(); }
  });
});
