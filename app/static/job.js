// Polls the job's JSON status and updates the page; the job id in the URL ties page and job.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box) { return; }
  var url = box.dataset.statusUrl;
  var $ = function (id) { return document.getElementById(id); };

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

  function render(job) {
    $("job-status").textContent = job.status;
    $("job-phase").textContent = job.progress.phase;
    var bar = $("job-bar");
    if (job.progress.percent == null) { bar.removeAttribute("value"); } else { bar.value = job.progress.percent; }
    $("job-percent").textContent = job.progress.percent == null ? "" : job.progress.percent + "%";
    $("job-bytes").textContent = size(job.progress.bytes_done);
    var s = seconds(job);
    $("job-elapsed").textContent = s == null ? "" : s.toFixed(0) + " s";
    $("job-rate").textContent = s ? "· " + size(job.progress.bytes_done / s) + "/s" : "";
    if (job.filename) { $("job-file").textContent = "File: " + job.filename; }
    if (job.warning) { $("job-warning").textContent = job.warning; $("job-warning").hidden = false; }
    if (job.error) { $("job-error").textContent = job.error; $("job-error").hidden = false; }
    $("job-done").hidden = job.status !== "finished";
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (job) {
        if (!job) { setTimeout(poll, 2000); return; }
        render(job);
        if (job.status === "queued" || job.status === "started") { setTimeout(poll, 700); }
        else if (job.status === "finished" && box.dataset.next) { window.location.assign(box.dataset.next); }
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
