// The console's own script: photo drop onto the enroll form, copy buttons. Everything else is htmx.
// Loaded from /console/static (the CSP allows no inline script).
"use strict";

function setUpDropZones(root) {
  root.querySelectorAll("form.dropzone").forEach(function (form) {
    if (form.dataset.dropReady) { return; }
    form.dataset.dropReady = "1";
    var input = form.querySelector("input[type=file]");
    form.addEventListener("dragover", function (event) {
      event.preventDefault();
      form.classList.add("dragging");
    });
    form.addEventListener("dragleave", function () { form.classList.remove("dragging"); });
    form.addEventListener("drop", function (event) {
      event.preventDefault();
      form.classList.remove("dragging");
      if (!event.dataTransfer || event.dataTransfer.files.length === 0) { return; }
      input.files = event.dataTransfer.files;
      form.requestSubmit();
    });
  });
}

function setUpCopyButtons(root) {
  root.querySelectorAll("button.copy").forEach(function (button) {
    if (button.dataset.copyReady) { return; }
    button.dataset.copyReady = "1";
    button.addEventListener("click", function () {
      var source = document.getElementById(button.dataset.copy);
      if (!source || !navigator.clipboard) { return; }
      navigator.clipboard.writeText(source.textContent).then(function () {
        button.textContent = "Copied";
      });
    });
  });
}

function setUp(root) {
  setUpDropZones(root);
  setUpCopyButtons(root);
}

// The live line says whether the event stream is connected (tests wait for "open" too).
document.addEventListener("htmx:wsOpen", function (event) {
  event.detail.elt.dataset.live = "open";
  event.detail.elt.textContent = "Live: new events appear at the top.";
});
document.addEventListener("htmx:wsClose", function (event) {
  event.detail.elt.dataset.live = "closed";
  event.detail.elt.textContent = "Live updates paused: reconnecting…";
});

document.addEventListener("DOMContentLoaded", function () { setUp(document); });
document.addEventListener("htmx:afterSwap", function (event) { setUp(event.target); });
