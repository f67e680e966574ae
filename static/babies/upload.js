// Crop-and-upload: the parent picks a file, frames the baby with cropper.js, and the original file
// plus the crop box go to the server with fetch. The server does all image work; the page only
// shows the new thumbnail. Loaded as a module after cropper.min.js (window.Cropper).

const modalElement = document.getElementById("upload-modal");

if (modalElement) {
  const form = modalElement.querySelector("#upload-form");
  const fileInput = form.querySelector("#upload-file");
  const weekInput = form.querySelector("#upload-week");
  const image = form.querySelector("#crop-image");
  const cropWrapper = form.querySelector("[data-crop-wrapper]");
  const cropReset = form.querySelector("[data-crop-reset]");
  const noPreview = form.querySelector("[data-no-preview]");
  const errorBox = form.querySelector("[data-upload-error]");
  const submitButton = form.querySelector("[data-upload-submit]");
  const spinner = form.querySelector("[data-upload-spinner]");
  const titleName = modalElement.querySelector("[data-upload-baby-name]");
  const csrfToken = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const maxBytes = Number(modalElement.dataset.maxBytes);
  const maxSize = modalElement.dataset.maxSize;
  const statusBox = document.querySelector("[data-upload-status]");

  let uploadUrl = null;
  let babyId = null;
  let babyName = "";
  let cropper = null;
  let objectUrl = null;
  let busy = false;

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  function announce(message, kind = "success") {
    if (!statusBox) return;
    statusBox.replaceChildren();
    const alert = document.createElement("div");
    alert.className = `alert alert-${kind} alert-dismissible fade show`;
    alert.textContent = message;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "btn-close";
    close.setAttribute("data-bs-dismiss", "alert");
    close.setAttribute("aria-label", "Close");
    alert.append(close);
    statusBox.append(alert);
  }

  function clearPreview() {
    if (cropper) {
      cropper.destroy();
      cropper = null;
    }
    if (objectUrl) {
      URL.revokeObjectURL(objectUrl);
      objectUrl = null;
    }
    image.removeAttribute("src");
    cropWrapper.hidden = true;
    noPreview.hidden = true;
  }

  function resetForm() {
    clearPreview();
    form.reset();
    showError("");
    setBusy(false);
    submitButton.disabled = true;
  }

  function setBusy(value) {
    busy = value;
    spinner.hidden = !value;
    submitButton.disabled = value || !fileInput.files.length;
    fileInput.disabled = value;
    form.setAttribute("aria-busy", value ? "true" : "false");
  }

  modalElement.addEventListener("show.bs.modal", (event) => {
    const trigger = event.relatedTarget;
    if (!trigger) return;
    uploadUrl = trigger.dataset.uploadUrl;
    babyId = trigger.dataset.babyId;
    babyName = trigger.dataset.babyName || "";
    titleName.textContent = babyName ? ` for ${babyName}` : "";
    resetForm();
  });

  modalElement.addEventListener("shown.bs.modal", () => fileInput.focus());
  modalElement.addEventListener("hidden.bs.modal", resetForm);

  fileInput.addEventListener("change", () => {
    clearPreview();
    showError("");
    const file = fileInput.files[0];
    submitButton.disabled = !file;
    if (!file) return;
    if (file.size === 0) {
      showError("This file is empty. Please choose the scan again.");
      submitButton.disabled = true;
      return;
    }
    if (file.size > maxBytes) {
      showError(`This file is larger than the ${maxSize} we accept. Please upload a smaller image.`);
      submitButton.disabled = true;
      return;
    }
    objectUrl = URL.createObjectURL(file);
    image.onload = () => {
      cropWrapper.hidden = false;
      cropper = new window.Cropper(image, {
        viewMode: 1, // the frame stays inside the picture
        autoCropArea: 1, // start with the whole picture: uploading without cropping is fine
        checkOrientation: false, // the browser already shows the photo upright
        zoomable: false,
        background: false,
        responsive: true,
      });
    };
    image.onerror = () => {
      // HEIC or TIFF: most browsers cannot draw them, the server can.
      clearPreview();
      noPreview.hidden = false;
    };
    image.src = objectUrl;
  });

  cropReset.addEventListener("click", () => {
    if (cropper) cropper.reset();
  });

  function cropBox() {
    if (!cropper) return null;
    const data = cropper.getData(true);
    const natural = cropper.getImageData();
    const whole =
      data.x <= 0 &&
      data.y <= 0 &&
      data.width >= Math.floor(natural.naturalWidth) &&
      data.height >= Math.floor(natural.naturalHeight);
    if (whole) return null;
    return { x: data.x, y: data.y, width: data.width, height: data.height };
  }

  function thumbnailItem(scan, layout) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = scan.url;
    link.target = "_blank";
    link.rel = "noopener";
    const img = document.createElement("img");
    img.src = scan.thumbnail_url;
    img.alt = `Scan of ${babyName}${scan.gestational_week ? ` at week ${scan.gestational_week}` : ""}, uploaded just now (opens full size)`;
    if (layout === "grid") {
      item.className = "col";
      img.className = "scan-tile";
    } else {
      img.className = "scan-thumb";
      img.width = 96;
      img.height = 96;
      link.className = "d-inline-block";
    }
    img.dataset.scanId = scan.id;
    link.append(img);
    item.append(link);
    return item;
  }

  function showNewScan(scan) {
    const list = document.querySelector(`[data-scan-list="${babyId}"]`);
    if (list) {
      const more = list.querySelector(".scan-more");
      const item = thumbnailItem(scan, list.dataset.scanLayout);
      if (more) list.insertBefore(item, more.closest("li"));
      else list.append(item);
    }
    const empty = document.querySelector(`[data-empty-scans="${babyId}"]`);
    if (empty) empty.hidden = true;
    const count = document.querySelector(`[data-scan-count="${babyId}"]`);
    if (count) {
      const value = Number(count.dataset.count) + 1;
      count.dataset.count = value;
      count.textContent = `${value} scan${value === 1 ? "" : "s"}`;
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy || !uploadUrl) return;
    const file = fileInput.files[0];
    if (!file) {
      showError("Please choose a scan to upload.");
      return;
    }
    const body = new FormData();
    body.append("file", file);
    const box = cropBox();
    if (box) body.append("crop_box", JSON.stringify(box));
    if (weekInput.value) body.append("gestational_week", weekInput.value);

    showError("");
    setBusy(true);
    let response;
    let payload = {};
    try {
      response = await fetch(uploadUrl, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
      });
      payload = await response.json().catch(() => ({}));
    } catch {
      setBusy(false);
      showError("We could not reach Instagender. Please check your connection and try again.");
      return;
    }
    setBusy(false);
    if (!response.ok) {
      showError(payload.error || "Something went wrong on our side. Please try again in a minute.");
      return;
    }
    if (payload.duplicate) {
      announce(payload.message || "You have already uploaded this scan.", "info");
    } else {
      showNewScan(payload);
      // The server's notices (too early to predict from, text or marks on it) are gentle advice:
      // the scan was stored either way.
      const notices = Array.isArray(payload.notices) ? payload.notices : [];
      // The week is said once: the too-early notice names it already.
      const week = payload.gestational_week && !notices.length ? ` (week ${payload.gestational_week})` : "";
      const added = `The scan was added to ${babyName}${week}.`;
      announce([added, ...notices].join(" "), notices.length ? "warning" : "success");
    }
    window.bootstrap.Modal.getOrCreateInstance(modalElement).hide();
  });
}
