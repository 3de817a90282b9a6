// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
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
  });
})();
