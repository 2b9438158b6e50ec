// Follows a running job: polls its JSON and shows the server's own view of it (`view`, from
// app/web/job_steps.py: the status words, the step, the bar, bytes and time), so the status line,
// the bar and the steps always agree. Also the tool's last log lines (for those who may read them)
// and whether Stop is still offered. When the job ends the page reloads (or goes back to where it
// came from), so the server can render its conclusion: what changed, the cause, the next steps.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box) { return; }
  var url = box.dataset.statusUrl;
  var LOG_LINES = 20;
  var $ = function (id) { return document.getElementById(id); };
  var text = function (id, value) { var el = $(id); if (el) { el.textContent = value; } };

  function steps(list) {
    document.querySelectorAll("#job-steps li").forEach(function (li, i) {
      var state = list[i] ? list[i].state : "todo";
      li.className = "step step-" + state;
      if (state === "current" || state === "failed" || state === "stopped") { li.setAttribute("aria-current", "step"); }
      else { li.removeAttribute("aria-current"); }
    });
  }

  function render(job) {
    var v = job.view;
    if (job.status === "started" && box.dataset.status === "queued") {
      text("job-heading", job.kind.charAt(0).toUpperCase() + job.kind.slice(1) + " running");
      box.dataset.status = "started";
    }
    text("job-status", v.status_text);
    text("job-step", v.step_text ? " · " + v.step_text : "");
    text("job-phase", job.progress.phase);
    steps(v.steps);
    var measure = $("job-measure"), bar = $("job-bar");
    if (measure) { measure.hidden = !v.bar; }
    if (bar) { if (v.percent == null) { bar.removeAttribute("value"); } else { bar.value = v.percent; } }
    text("job-percent", v.percent == null ? "" : v.percent + "%");
    text("job-bytes", v.bytes_text);
    text("job-rate", v.rate_text ? "· " + v.rate_text : "");
    text("job-elapsed", v.elapsed_text ? "· running for " + v.elapsed_text : "");
    if (job.filename && $("job-file")) {
      var code = document.createElement("code");
      code.textContent = job.filename;
      $("job-file").replaceChildren("File: ", code);
    }
    if (job.warning) { text("job-warning", job.warning); $("job-warning").hidden = false; }
    if ($("job-log") && job.log) { text("job-log", job.log.slice(-LOG_LINES).join("\n")); }
    if ($("job-stop-form") && !job.may_stop) { $("job-stop-form").hidden = true; }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (job) {
        if (!job) { setTimeout(poll, 2000); return; }
        render(job);
        if (job.status === "queued" || job.status === "started") { setTimeout(poll, 700); }
        else if (job.status === "finished" && box.dataset.next) { window.location.assign(box.dataset.next); }
        else { window.location.reload(); }
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
