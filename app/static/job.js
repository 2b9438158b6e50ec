// Follows a running job: polls its JSON status and updates the status line, steps, bar and bytes.
// When the job ends the page reloads (or goes back to where it came from), so the server can
// render its conclusion: what changed, the failure's cause, the next steps.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box) { return; }
  var url = box.dataset.statusUrl;
  var $ = function (id) { return document.getElementById(id); };
  var BYTE_PHASES = ["dumping", "downloading"];

  function size(n) {
    if (n == null) { return ""; }
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
  }

  function seconds(job) {
    if (!job.started_at) { return null; }
    var end = job.ended_at ? new Date(job.ended_at) : new Date();
    return Math.max(0, (end - new Date(job.started_at)) / 1000);
  }

  function steps(phase, status) {
    var items = document.querySelectorAll("#job-steps li"), current = -1;
    items.forEach(function (li, i) { if (li.dataset.phase === phase) { current = i; } });
    if (status === "finished") { current = items.length; }
    items.forEach(function (li, i) {
      var state = i < current ? "done" : i === current ? (status === "failed" ? "failed" : "current") : "todo";
      li.className = "step step-" + state;
      if (i === current) { li.setAttribute("aria-current", "step"); } else { li.removeAttribute("aria-current"); }
    });
  }

  function render(job) {
    var p = job.progress;
    $("job-status").textContent = job.status;
    $("job-phase").textContent = p.phase;
    steps(p.phase, job.status);
    var bar = $("job-bar");
    if (bar) {
      if (job.status === "failed") { bar.hidden = true; }
      else if (p.percent == null) { bar.removeAttribute("value"); } else { bar.value = p.percent; }
    }
    $("job-percent").textContent = p.percent == null ? "" : p.percent + "%";
    var bytes = BYTE_PHASES.indexOf(p.phase) >= 0;
    $("job-bytes").textContent = bytes ? size(p.bytes_done) : "";
    var s = seconds(job);
    $("job-elapsed").textContent = s == null ? "" : s.toFixed(0) + " s";
    $("job-rate").textContent = bytes && s ? "· " + size(p.bytes_done / s) + "/s" : "";
    if (job.filename) { $("job-file").textContent = "File: " + job.filename; }
    if (job.warning) { $("job-warning").textContent = job.warning; $("job-warning").hidden = false; }
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
