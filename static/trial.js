// Improves the plain-form trial page: keys 1-5, response time from performance.now(),
// sending the answer at once with retries (exponential backoff) and a notice when the
// connection is lost. Without this script the form posts and the server redirects.
(function () {
  "use strict";
  var script = document.currentScript;
  var mode = script ? script.getAttribute("data-mode") : "trial";
  var form = document.getElementById("trial-form");
  if (!form) return;
  var status = document.getElementById("status");
  var buttons = Array.prototype.slice.call(form.querySelectorAll("button.candidate"));
  var imgs = Array.prototype.slice.call(form.querySelectorAll("img"));
  var shownAt = null, sent = false;
  // The page's language: the messages come translated from the server's catalogue.
  function msg(name, fallback) {
    return (script && script.getAttribute("data-msg-" + name)) || fallback;
  }

  // Once per participant: the viewport and screen size, for the analysis of who saw what.
  var screenUrl = script ? script.getAttribute("data-screen") : "";
  if (screenUrl && window.fetch) {
    fetch(screenUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ viewport: [window.innerWidth, window.innerHeight],
                             screen: [screen.width, screen.height] })
    }).catch(function () {});
  }
  // Below the experiment's minimum viewport the trial is hidden (screen.css): no answer
  // may then be given from the keyboard either.
  function visible() { return form.offsetParent !== null; }

  function loaded(img) {
    return new Promise(function (resolve) {
      if (img.complete) return resolve();
      img.addEventListener("load", resolve); img.addEventListener("error", resolve);
    });
  }
  // The response time runs from the moment all six images are on screen.
  Promise.all(imgs.map(loaded)).then(function () {
    requestAnimationFrame(function () { shownAt = performance.now(); });
  });

  function say(text, lost) {
    if (!status) return;
    status.hidden = !text; status.textContent = text || "";
    status.className = "status" + (lost ? " lost" : "");
  }

  function post(body, attempt) {
    fetch(form.action, {
      method: "POST", credentials: "same-origin",
      headers: { "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded" },
      body: body
    }).then(function (r) {
      if (r.ok) return r.json().then(function (j) { say(""); location.replace(j.redirect); });
      if (r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          say(msg("rejected", "This answer was not accepted: %s. Reload the page to continue.")
              .replace("%s", j.error || ("HTTP " + r.status)), true);
        });
      }
      throw new Error("HTTP " + r.status);
    }).catch(function () {
      var wait = Math.min(10000, 300 * Math.pow(2, attempt));
      say(msg("lost", "The connection to the server is lost. Your answer is kept and will be "
              + "sent again in %s s (attempt %d).")
          .replace("%s", (wait / 1000).toFixed(1)).replace("%d", String(attempt + 1)), true);
      setTimeout(function () { post(body, attempt + 1); }, wait);
    });
  }

  function answer(choice) {
    if (sent || !visible()) return;
    sent = true;
    var rt = shownAt === null ? "" : (performance.now() - shownAt).toFixed(1);
    form.elements["rt_ms"].value = rt;
    buttons.forEach(function (b) { b.disabled = true; });
    if (buttons[choice]) buttons[choice].classList.add("chosen");
    form.classList.add("sending");
    if (mode !== "trial") {
      // The practice trial is a plain form; keep the choice as the submitted value.
      var h = document.createElement("input");
      h.type = "hidden"; h.name = "choice"; h.value = String(choice);
      form.appendChild(h); form.submit(); return;
    }
    var data = new URLSearchParams();
    data.append("n", form.elements["n"].value);
    // Binds the answer to the participant and trial this page was made for.
    data.append("trial_token", form.elements["trial_token"].value);
    data.append("choice", String(choice));
    data.append("rt_ms", rt);
    // The lab pages carry a CSRF token (the MTurk pages need none: no cookie there).
    if (form.elements["csrf_token"]) data.append("csrf_token", form.elements["csrf_token"].value);
    post(data.toString(), 0);
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var b = e.submitter;
    if (b && b.value !== undefined) answer(parseInt(b.value, 10));
  });
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    var k = parseInt(e.key, 10);
    if (k >= 1 && k <= 5) { e.preventDefault(); answer(k - 1); }
  });
  // Keys work from here on (a test waits for this before pressing one).
  form.setAttribute("data-ready", "1");
})();
