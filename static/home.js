// The researcher's home: poll the progress JSON and redraw each cell's chart (answers
// against the target as a bar, the answers over the last polls as a line), and follow a report
// being made (status JSON) until it is done. No inline script: the CSP forbids it.
(function () {
  "use strict";
  var SVG_W = 220, BAR_H = 14, SPARK_TOP = 20, SPARK_H = 40, POLL_MS = 2000, KEEP = 60;
  var history = {};

  function drawCell(fig, c) {
    var bar = fig.querySelector("rect.bar");
    var frac = c.target > 0 ? Math.min(1, c.answers / c.target) : 0;
    bar.setAttribute("width", (SVG_W * frac).toFixed(1));
    fig.querySelector(".answers").textContent = c.answers;
    fig.querySelector(".target").textContent = c.target;
    fig.querySelector(".share").textContent =
      c.share === null ? "—" : Math.round(100 * c.share) + " %";
    var h = history[c.key] = (history[c.key] || []).concat([c.answers]).slice(-KEEP);
    var top = Math.max(c.target, h[h.length - 1], 1);
    var pts = h.map(function (v, i) {
      var x = h.length > 1 ? (SVG_W * i) / (h.length - 1) : 0;
      var y = SPARK_TOP + SPARK_H - (SPARK_H * v) / top;
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    fig.querySelector("polyline.spark").setAttribute("points", pts.join(" "));
  }

  function row(values) {
    var tr = document.createElement("tr");
    values.forEach(function (v) {
      var td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    });
    return tr;
  }

  function drawProgress(data) {
    data.cells.forEach(function (c) {
      var fig = document.querySelector('figure.cell[data-key="' + CSS.escape(c.key) + '"]');
      if (fig) drawCell(fig, c);
    });
    var body = document.querySelector("#participants-by-platform tbody");
    if (body) {
      body.textContent = "";
      if (!data.participants.length) body.appendChild(row(["No participants yet.", "", "", "", "", ""]));
      data.participants.forEach(function (g) {
        body.appendChild(row([g.platform, g.environment, g.started, g.completed, g.withdrawn,
                              g.excluded]));
      });
    }
    var t = document.getElementById("progress-time");
    if (t) t.textContent = data.time;
  }

  // A poll that never gets an answer (a dropped connection under load) would end its
  // loop for good: every request gives up after FETCH_TIMEOUT_MS and the loop retries.
  var FETCH_TIMEOUT_MS = 15000;
  function getJSON(url) {
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, FETCH_TIMEOUT_MS);
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" },
                        signal: ctl.signal })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .finally(function () { clearTimeout(timer); });
  }

  var cells = document.getElementById("cells");
  if (cells) {
    var poll = function () {
      getJSON(cells.dataset.url).then(drawProgress).catch(function () {})
        .then(function () { setTimeout(poll, POLL_MS); });
    };
    poll();
  }

  // ---- the report: a button, a progress indicator, the link when it is done
  var form = document.getElementById("report-form");
  if (!form) return;
  var status = document.getElementById("report-status");
  var bar = document.getElementById("report-progress");
  var log = document.getElementById("report-log");
  var latest = document.getElementById("report-latest");
  var button = document.getElementById("report-button");

  function showReport(s) {
    var cur = s.current;
    if (cur && cur.state === "running") {
      bar.hidden = false;
      button.disabled = true;
      status.textContent = "Running (" + cur.elapsed_s + " s): " + cur.stage;
      return true;
    }
    bar.hidden = true;
    button.disabled = false;
    if (cur && cur.state === "failed") {
      status.textContent = "The last report failed: " + cur.stage;
      log.textContent = cur.log;
      log.hidden = !cur.log;
    } else if (cur) {
      status.textContent = "Done in " + cur.elapsed_s + " s.";
      log.hidden = true;
    }
    if (s.latest) {
      latest.textContent = "";
      var a = document.createElement("a");
      a.id = "report-link";
      a.href = s.latest.url;
      a.textContent = "The latest report";
      latest.appendChild(a);
      latest.appendChild(document.createTextNode(" (" + s.latest.id + ")"));
    }
    return false;
  }

  function follow() {
    getJSON(form.dataset.status).then(function (s) {
      if (showReport(s)) setTimeout(follow, 1000);
    }).catch(function () { setTimeout(follow, 3000); });
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    button.disabled = true;
    bar.hidden = false;
    status.textContent = "Starting…";
    fetch(form.action, {
      method: "POST", credentials: "same-origin", body: new FormData(form),
      headers: { Accept: "application/json", "X-CSRFToken": form.csrf_token.value }
    }).then(function (r) {
      if (!r.ok) throw new Error("the server answered " + r.status);
      follow();
    }).catch(function (e) {
      bar.hidden = true; button.disabled = false;
      status.textContent = "Could not start the report: " + e.message;
    });
  });
  follow();
})();
