// Progressive enhancement only: every page works without this file (forms, links and buttons do the work;
// the keys below only click or focus what is already on the page).
(function () {
  "use strict";

  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
      (el.tagName === "INPUT" && !["checkbox", "radio", "button", "submit", "range"].includes(el.type)));
  }

  // Queue rows: j/k move the selection, o/Enter open it, x ticks it for a bulk decision.
  function rowNavigation() {
    var table = document.querySelector("table[data-rows]");
    if (!table) { return null; }
    var rows = Array.prototype.slice.call(table.querySelectorAll("tbody tr[data-href]"));
    var at = -1;
    function select(i) {
      if (!rows.length) { return; }
      at = Math.max(0, Math.min(rows.length - 1, i));
      rows.forEach(function (r, j) { r.classList.toggle("selected", j === at); });
      rows[at].scrollIntoView({block: "nearest"});
    }
    return {
      j: function () { select(at + 1); return true; },
      k: function () { select(at - 1); return true; },
      o: function () { if (at >= 0) { window.location.href = rows[at].dataset.href; return true; } return false; },
      x: function () {
        if (at < 0) { select(0); }
        var box = rows[at] && rows[at].querySelector("input[type=checkbox]");
        if (box) { box.checked = !box.checked; return true; }
        return false;
      }
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    // Filter menus apply as soon as one changes.
    document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
      form.querySelectorAll("select").forEach(function (sel) {
        sel.addEventListener("change", function () { form.requestSubmit(); });
      });
    });
    // A second click while a POST is on its way must not send it twice.
    document.querySelectorAll("form[method=post]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (form.dataset.sent) { ev.preventDefault(); return; }
        form.dataset.sent = "1";
      });
    });
    var all = document.querySelector("[data-select-all]");
    if (all) {
      all.addEventListener("change", function () {
        document.querySelectorAll("tbody input[name=case_id]").forEach(function (b) { b.checked = all.checked; });
      });
    }
    // Inspection viewer: heatmap opacity and box toggle.
    document.querySelectorAll("[data-viewer]").forEach(function (viewer) {
      var heat = viewer.querySelector("img.heat");
      var slider = viewer.querySelector("[data-heat-opacity]");
      if (heat && slider) {
        var apply = function () { heat.style.opacity = slider.value / 100; };
        slider.addEventListener("input", apply);
        apply();
      }
      var toggle = viewer.querySelector("[data-toggle-boxes]");
      if (toggle) {
        toggle.addEventListener("change", function () {
          viewer.querySelectorAll(".box").forEach(function (b) { b.hidden = !toggle.checked; });
        });
      }
    });

    // Keyboard triage.  Keys act only outside text fields; Esc leaves a field (or closes the help).
    var rows = rowNavigation();
    var help = document.getElementById("shortcuts");
    document.addEventListener("keydown", function (ev) {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
      // Enter opens the selected row only when nothing else has the focus (a focused button keeps its Enter).
      var key = ev.key === "Enter" && ev.target === document.body ? "o" : ev.key;
      if (key === "Escape") {
        if (help && !help.hidden) { help.hidden = true; }
        if (typing(document.activeElement)) { document.activeElement.blur(); }
        return;
      }
      if (typing(ev.target)) { return; }
      if (key === "?") { if (help) { help.hidden = !help.hidden; } ev.preventDefault(); return; }
      if (rows && rows[key] && rows[key]()) { ev.preventDefault(); return; }
      var target = document.querySelector('[data-key="' + (key === "/" ? "/" : key.toLowerCase()) + '"]');
      if (!target || key.length !== 1) { return; }
      ev.preventDefault();
      if (typing(target)) { target.focus(); } else { target.click(); }
    });
  });
})();
