// The Upload page: PUT the chosen file as the raw request body (streamed by the browser, never a form post),
// then lead to its page, where "checking…" turns into its summary once the worker has read it.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  var status = document.getElementById("upload-status");
  if (!form) { return; }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var file = document.getElementById("upload-file").files[0];
    if (!file) { return; }
    var request = new XMLHttpRequest();
    request.open("PUT", form.dataset.api.replace("NAME", encodeURIComponent(file.name)));
    request.setRequestHeader("X-CSRFToken", form.dataset.csrf);
    request.setRequestHeader("Content-Type", "application/octet-stream");
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) { status.textContent = "Sending… " + Math.floor(100 * e.loaded / e.total) + " %"; }
    });
    request.addEventListener("load", function () {
      var answer = {};
      try { answer = JSON.parse(request.responseText); } catch (e) { answer = {}; }
      if (request.status === 201) {
        status.textContent = "Stored as " + answer.filename + "; checking…";
        window.location.href = form.dataset.api.replace(/\/api\/(setting|targets\/[^/]+)\/uploads\/NAME$/, function (m, where) {
          return (where === "setting" ? "" : "/" + where) + "/backups/" + encodeURIComponent(answer.filename);
        });
      } else {
        status.textContent = answer.error || ("The upload failed (" + request.status + ").");
      }
    });
    request.addEventListener("error", function () { status.textContent = "The upload failed: the connection was lost."; });
    document.getElementById("upload-submit").disabled = true;
    status.textContent = "Sending…";
    request.send(file);
  });
})();
