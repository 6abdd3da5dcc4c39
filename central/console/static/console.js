// The console's own script: photo drop onto the enroll form, copy buttons. Everything else is htmx.
// Loaded from /console/static (the CSP allows no inline script).
"use strict";

// Each photo chosen or dropped is drawn on a canvas (no URL to load, so the CSP's img-src is not
// involved); when central answers, each photo's outcome is written on its own preview.
function showPreviews(form, files) {
  var box = document.getElementById(form.dataset.previews);
  if (!box) { return; }
  box.textContent = "";
  Array.prototype.forEach.call(files, function (file) {
    var figure = document.createElement("figure");
    figure.className = "preview";
    figure.dataset.filename = file.name;
    var canvas = document.createElement("canvas");
    canvas.width = 160;
    canvas.height = 160;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "photo " + file.name);
    var caption = document.createElement("figcaption");
    caption.textContent = file.name + ": enrolling…";
    figure.appendChild(canvas);
    figure.appendChild(caption);
    box.appendChild(figure);
    if (window.createImageBitmap) {
      createImageBitmap(file).then(function (bitmap) {
        var scale = Math.min(canvas.width / bitmap.width, canvas.height / bitmap.height);
        var w = bitmap.width * scale, h = bitmap.height * scale;
        canvas.getContext("2d").drawImage(bitmap, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
      }, function () { caption.textContent = file.name + ": not an image the browser can show"; });
    }
  });
}

function markPreviews(results) {
  results.querySelectorAll("li.result").forEach(function (item) {
    var box = document.getElementById(item.dataset.previews || "");
    if (!box) { return; }
    box.querySelectorAll("figure.preview").forEach(function (figure) {
      if (figure.dataset.filename === item.dataset.filename && !figure.dataset.status) {
        figure.dataset.status = item.dataset.status;
        figure.classList.add("result-" + item.dataset.status);
        figure.querySelector("figcaption").textContent = item.textContent.trim();
      }
    });
  });
}

function setUpDropZones(root) {
  root.querySelectorAll("form.dropzone").forEach(function (form) {
    if (form.dataset.dropReady) { return; }
    form.dataset.dropReady = "1";
    var input = form.querySelector("input[type=file]");
    input.addEventListener("change", function () { showPreviews(form, input.files); });
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
      showPreviews(form, input.files);
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
document.addEventListener("htmx:afterSwap", function (event) {
  setUp(event.target);
  markPreviews(event.target);
});
