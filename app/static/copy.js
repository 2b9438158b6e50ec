// "Copy" beside a secret shown once (a new API token, a set-password link, recovery codes): copies the text
// of the element it names.
(function () {
  "use strict";
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.dataset.copy);
    var done = button.parentElement.querySelector(".copy-done");
    if (!source) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = source.textContent.trim();
      var copied = navigator.clipboard && window.isSecureContext
        ? navigator.clipboard.writeText(text)
        : new Promise(function (resolve, reject) {  // plain HTTP: select it and use the old command
          var range = document.createRange();
          range.selectNodeContents(source);
          window.getSelection().removeAllRanges();
          window.getSelection().addRange(range);
          if (document.execCommand("copy")) { resolve(); } else { reject(); }
        });
      copied.then(function () { if (done) { done.textContent = "Copied."; } },
                  function () { if (done) { done.textContent = "Copying failed: select the text and copy it."; } });
    });
  });
})();
