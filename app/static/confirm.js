// A destructive action asks first: a form with data-confirm submits only when the person agrees.
// Without scripts the form posts at once; the server still refuses what must never happen.
(function () {
  "use strict";
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
})();
