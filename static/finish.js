// The MTurk finish page (no inline scripts: the CSP forbids them).
// One submission only: a double click must not post twice.
document.getElementById("submit-form").addEventListener("submit", function (e) {
  var b = document.getElementById("submit-hit");
  if (b.disabled) { e.preventDefault(); return; }
  setTimeout(function () { b.disabled = true; b.textContent = "Submitting…"; }, 0);
});
