// Running jobs in a list (activity, home page) show their phase and percent, polled from the job API;
// when one ends the page reloads once, so its row shows the outcome the server recorded.
(function () {
  "use strict";
  var rows = document.querySelectorAll("[data-live-job]");
  if (!rows.length) { return; }
  var reloading = false;

  function poll(row) {
    fetch(row.dataset.liveJob, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (job) {
        if (!job) { setTimeout(function () { poll(row); }, 3000); return; }
        if (job.status === "finished" || job.status === "failed" || job.status === "stopped") {
          if (!reloading) { reloading = true; setTimeout(function () { window.location.reload(); }, 500); }
          return;
        }
        var percent = job.progress.percent == null ? "" : " · " + job.progress.percent + "%";
        row.querySelector(".live-progress").textContent = job.progress.phase + percent;
        setTimeout(function () { poll(row); }, 1500);
      })
      .catch(function () { setTimeout(function () { poll(row); }, 3000); });
  }
  rows.forEach(poll);
})();
