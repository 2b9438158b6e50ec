// The set-password page: the link's one-time secret is after '#' (never sent to the server, so never
// in an access log). Copy it into the form, take it out of the address bar, and hide the field.
(function () {
  "use strict";
  var input = document.getElementById("secret");
  var secret = window.location.hash.slice(1);
  if (!input || !secret) { return; }
  input.value = decodeURIComponent(secret);
  window.history.replaceState(null, "", window.location.pathname);
  if (!input.getAttribute("aria-invalid")) { document.getElementById("secret-field").hidden = true; }
})();
