// Crop-and-upload: the parent picks a file, frames the baby with cropper.js, and the original file
// plus the crop box go to the server with XMLHttpRequest (for its upload progress events and a
// real abort). The server does all image work; the page only shows the new thumbnail. Loaded as
// a module after cropper.min.js (window.Cropper) and exifr's lite build (window.exifr), which
// reads the photo's own date so the week shown before upload is the week that will be recorded.

const modalElement = document.getElementById("upload-modal");

const DAY_MS = 24 * 60 * 60 * 1000;
// ml/gestation.py: 40 weeks at the due date; weeks outside 4-42 mean a date is wrong.
const FULL_TERM_DAYS = 280;
const FIRST_PLAUSIBLE_WEEK = 4;
const LAST_PLAUSIBLE_WEEK = 42;

function isoDay(date) {
  const pad = (value) => String(value).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function dayNumber(iso) {
  const [year, month, day] = iso.split("-").map(Number);
  return Date.UTC(year, month - 1, day) / DAY_MS;
}

function weekOn(dueIso, dayIso) {
  if (!dueIso || !dayIso) return null;
  const week = Math.floor((FULL_TERM_DAYS - (dayNumber(dueIso) - dayNumber(dayIso))) / 7);
  return week >= FIRST_PLAUSIBLE_WEEK && week <= LAST_PLAUSIBLE_WEEK ? week : null;
}

function longDate(iso) {
  const [year, month, day] = iso.split("-").map(Number);
  return new Date(year, month - 1, day).toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric" });
}

function megabytes(bytes) {
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

async function photoTakenOn(file) {
  // The EXIF date only advises: any failure just means "no date" (the server tries again).
  if (!window.exifr) return null;
  try {
    // Only the EXIF block's two date tags (DateTimeOriginal, DateTimeDigitized): the lite build
    // cannot "pick" by name, and nothing else in the file is wanted.
    const tags = await window.exifr.parse(file, { ifd0: false, exif: [0x9003, 0x9004], gps: false, interop: false, ifd1: false });
    const taken = tags && (tags.DateTimeOriginal || tags.CreateDate);
    if (!(taken instanceof Date) || Number.isNaN(taken.getTime()) || taken.getFullYear() < 1990) return null;
    const iso = isoDay(taken);
    return iso > isoDay(new Date()) ? null : iso;
  } catch {
    return null;
  }
}

if (modalElement) {
  const form = modalElement.querySelector("#upload-form");
  const fileInput = form.querySelector("#upload-file");
  const weekInput = form.querySelector("#upload-week");
  const weekSummary = form.querySelector("[data-week-summary]");
  const image = form.querySelector("#crop-image");
  const cropWrapper = form.querySelector("[data-crop-wrapper]");
  const cropReset = form.querySelector("[data-crop-reset]");
  const noPreview = form.querySelector("[data-no-preview]");
  const errorBox = form.querySelector("[data-upload-error]");
  const submitButton = form.querySelector("[data-upload-submit]");
  const cancelButton = form.querySelector("[data-upload-cancel]");
  const progress = form.querySelector("[data-upload-progress]");
  const progressBar = form.querySelector("[data-progress-bar]");
  const progressFill = form.querySelector("[data-progress-fill]");
  const progressText = form.querySelector("[data-progress-text]");
  const titleName = modalElement.querySelector("[data-upload-baby-name]");
  const csrfToken = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const maxBytes = Number(modalElement.dataset.maxBytes);
  const maxSize = modalElement.dataset.maxSize;
  const minWeek = Number(modalElement.dataset.minWeek) || 0;
  const statusBox = document.querySelector("[data-upload-status]");
  const modal = () => window.bootstrap.Modal.getOrCreateInstance(modalElement);

  let uploadUrl = null;
  let babyId = null;
  let babyName = "";
  let babyPhrase = "";
  let dueDate = "";
  let isBorn = false;
  let cropper = null;
  let objectUrl = null;
  let request = null; // the XMLHttpRequest in flight
  let takenOn = null; // the photo's date (YYYY-MM-DD), when it has one
  let fileIsBad = false; // the chosen file was refused: Upload stays off until another is chosen
  let isShown = false;
  let selection = 0; // which file choice is current (a slow EXIF read must not win over a newer one)

  function showError(message, { fileRefused = false } = {}) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
    if (fileRefused) {
      // "The whole picture will be uploaded" or a crop frame beside "we cannot read this file"
      // would contradict the error: the file is gone from the form's point of view.
      fileIsBad = true;
      clearPreview();
      updateWeekSummary();
    }
    updateSubmit();
  }

  function updateSubmit() {
    submitButton.disabled = Boolean(request) || fileIsBad || !fileInput.files.length;
  }

  function announce(message, kind = "success") {
    if (!statusBox) return;
    // Messages from earlier pages ("… was added") are done with once something new happened.
    document.querySelectorAll("[data-flash-messages] .alert").forEach((alert) => alert.remove());
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
    image.onload = null;
    image.onerror = null;
    image.removeAttribute("src");
    cropWrapper.hidden = true;
    noPreview.hidden = true;
  }

  function typedWeek() {
    const value = Number(weekInput.value);
    return weekInput.value && Number.isInteger(value) && value >= 4 && value <= 42 ? value : null;
  }

  // The week that will be recorded, and why; the server works it out the same way
  // (babies.views.scan_week_and_source), reading the file's EXIF itself if the browser could not.
  function updateWeekSummary() {
    let text = "";
    let week = null;
    if (!fileInput.files.length || fileIsBad) {
      text = "";
    } else if (weekInput.value) {
      week = typedWeek();
      text = week ? `Week ${week} will be recorded.` : "Please type a week between 4 and 42.";
    } else if (weekOn(dueDate, takenOn)) {
      week = weekOn(dueDate, takenOn);
      text = `Week ${week} will be recorded, from the photo's date (${longDate(takenOn)}).`;
    } else if (!isBorn && weekOn(dueDate, isoDay(new Date()))) {
      week = weekOn(dueDate, isoDay(new Date()));
      text = `Week ${week} will be recorded, counted from today (the file has no date). Type the week if the scan is older.`;
    } else {
      text = "No week will be recorded unless you type it.";
    }
    if (week && minWeek && week < minWeek) {
      text += ` Predictions need week ${minWeek} or later; the scan is kept either way.`;
    }
    weekSummary.textContent = text;
  }

  function resetForm() {
    abortUpload();
    clearPreview();
    form.reset();
    takenOn = null;
    fileIsBad = false;
    selection += 1;
    showError("");
    showProgress(null);
    updateWeekSummary();
    setBusy(false);
  }

  function setBusy(value) {
    fileInput.disabled = value;
    // Read-only, not disabled: the scrolling body keeps something keyboard users can reach.
    weekInput.readOnly = value;
    cropReset.disabled = value;
    form.setAttribute("aria-busy", value ? "true" : "false");
    updateSubmit();
  }

  function showProgress(loaded, total) {
    if (loaded === null) {
      progress.hidden = true;
      progressFill.style.width = "0%";
      progressBar.setAttribute("aria-valuenow", "0");
      progressText.textContent = "";
      return;
    }
    progress.hidden = false;
    const percent = total ? Math.min(100, Math.round((loaded / total) * 100)) : 0;
    progressFill.style.width = `${percent}%`;
    progressBar.setAttribute("aria-valuenow", String(percent));
    progressText.textContent =
      total && loaded >= total
        ? "Sent; checking the picture…"
        : `Sending: ${percent} % (${megabytes(loaded)} of ${megabytes(total)})`;
  }

  function abortUpload() {
    if (!request) return false;
    const aborted = request;
    request = null;
    aborted.abort();
    return true;
  }

  modalElement.addEventListener("show.bs.modal", (event) => {
    const trigger = event.relatedTarget;
    if (!trigger) return;
    uploadUrl = trigger.dataset.uploadUrl;
    babyId = trigger.dataset.babyId;
    babyName = trigger.dataset.babyName || "";
    babyPhrase = trigger.dataset.babyPhrase || babyName;
    dueDate = trigger.dataset.dueDate || "";
    isBorn = trigger.dataset.born === "true";
    titleName.textContent = babyPhrase ? ` for ${babyPhrase}` : "";
    isShown = false;
    resetForm();
  });

  modalElement.addEventListener("shown.bs.modal", () => {
    isShown = true;
    fileInput.focus();
    // A file chosen while the modal was still opening: its frame is drawn now, at full size.
    if (image.complete && image.getAttribute("src") && !cropper) startCropper();
  });
  modalElement.addEventListener("hide.bs.modal", () => {
    isShown = false;
    abortUpload();
  });
  modalElement.addEventListener("hidden.bs.modal", resetForm);

  cancelButton.addEventListener("click", () => {
    if (!request) {
      modal().hide();
      return;
    }
    const sentEverything = progressFill.style.width === "100%";
    abortUpload();
    setBusy(false);
    showProgress(null);
    showError(
      sentEverything
        ? "The upload was cancelled after the picture had been sent. If it was already stored, it will show when you reload the page."
        : "The upload was cancelled. Nothing was stored.",
    );
    cancelButton.focus();
  });

  function startCropper() {
    // cropper.js measures its container: only once the modal is fully shown (no fade, no
    // 100x100 fallback frame) and the picture has loaded.
    if (cropper || !isShown) return;
    cropWrapper.hidden = false;
    cropper = new window.Cropper(image, {
      viewMode: 1, // the frame stays inside the picture
      autoCropArea: 1, // start with the whole picture: uploading without cropping is fine
      checkOrientation: false, // the browser already shows the photo upright
      zoomable: false,
      background: false,
      responsive: true,
    });
  }

  fileInput.addEventListener("change", async () => {
    clearPreview();
    fileIsBad = false;
    takenOn = null;
    selection += 1;
    const current = selection;
    showError("");
    const file = fileInput.files[0];
    updateWeekSummary();
    if (!file) return;
    if (file.size === 0) {
      showError("This file is empty. Please choose the scan again.", { fileRefused: true });
      return;
    }
    if (file.size > maxBytes) {
      showError(`This file is larger than the ${maxSize} we accept. Please upload a smaller image.`, { fileRefused: true });
      return;
    }
    objectUrl = URL.createObjectURL(file);
    image.onload = () => {
      if (current === selection) startCropper();
    };
    image.onerror = () => {
      // HEIC or TIFF: most browsers cannot draw them, the server can.
      if (current !== selection) return;
      clearPreview();
      if (!fileIsBad) noPreview.hidden = false;
    };
    image.src = objectUrl;
    const date = await photoTakenOn(file);
    if (current !== selection) return;
    takenOn = date;
    updateWeekSummary();
  });

  weekInput.addEventListener("input", updateWeekSummary);

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

  function thumbnailItem(scan, layout, number) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = scan.url;
    link.target = "_blank";
    link.rel = "noopener";
    const img = document.createElement("img");
    img.src = scan.thumbnail_url;
    const week = scan.gestational_week ? ` at week ${scan.gestational_week}` : "";
    img.alt = `Scan ${number} of ${babyName}${week}, uploaded just now (opens full size)`;
    img.dataset.scanId = scan.id;
    link.append(img);
    if (layout === "grid") {
      item.className = "col";
      img.className = "scan-tile";
      const figure = document.createElement("figure");
      figure.className = "mb-0";
      const caption = document.createElement("figcaption");
      caption.className = "small text-body-secondary mt-1";
      caption.textContent = `Scan ${number}${scan.gestational_week ? ` · Week ${scan.gestational_week}` : ""} · just now`;
      figure.append(link, caption);
      item.append(figure);
    } else {
      img.className = "scan-thumb";
      img.width = 96;
      img.height = 96;
      link.className = "d-inline-block";
      const label = document.createElement("span");
      label.className = "d-block small text-body-secondary scan-number";
      label.setAttribute("aria-hidden", "true");
      label.textContent = `Scan ${number}`;
      item.append(link, label);
    }
    // The same badges as the server-rendered tiles, so "Scan 2 was taken at week 10" has a face.
    const badges = [];
    if (scan.gestational_week && minWeek && scan.gestational_week < minWeek) badges.push(["Too early", "scan-too-early", "text-bg-light border"]);
    if (scan.has_markers) badges.push(["Text or marks", "scan-has-markers", "text-bg-warning"]);
    const badgeHost = item.querySelector("figcaption") || item;
    for (const [text, testId, style] of badges) {
      const badge = document.createElement("span");
      badge.className = `d-block badge ${style} mt-1`;
      badge.dataset.testid = testId;
      badge.setAttribute("aria-hidden", "true");
      badge.textContent = text;
      badgeHost.append(badge);
    }
    if (badges.length) {
      img.alt = img.alt.replace(" (opens full size)", `${badges.some(([text]) => text === "Too early") ? ", too early to predict from" : ""}${scan.has_markers ? ", with text or marks on it" : ""} (opens full size)`);
    }
    return item;
  }

  function showNewScan(scan) {
    const count = document.querySelector(`[data-scan-count="${babyId}"]`);
    const number = (count ? Number(count.dataset.count) : document.querySelectorAll(`[data-scan-list="${babyId}"] img`).length) + 1;
    const list = document.querySelector(`[data-scan-list="${babyId}"]`);
    if (list) {
      const more = list.querySelector(".scan-more");
      const item = thumbnailItem(scan, list.dataset.scanLayout, number);
      if (more) list.insertBefore(item, more.closest("li"));
      else list.append(item);
    }
    const empty = document.querySelector(`[data-empty-scans="${babyId}"]`);
    if (empty) empty.hidden = true;
    if (count) {
      count.dataset.count = number;
      count.textContent = `${number} scan${number === 1 ? "" : "s"}`;
    }
  }

  function send(body) {
    // XMLHttpRequest, not fetch: only it reports upload progress in every browser, and abort()
    // really stops sending the file.
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      request = xhr;
      xhr.open("POST", uploadUrl);
      xhr.setRequestHeader("X-CSRFToken", csrfToken);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.responseType = "text";
      xhr.upload.addEventListener("progress", (event) => {
        if (request === xhr) showProgress(event.loaded, event.lengthComputable ? event.total : 0);
      });
      xhr.addEventListener("load", () => {
        let payload = {};
        try {
          payload = JSON.parse(xhr.responseText);
        } catch {
          payload = {};
        }
        resolve({ status: xhr.status, payload, aborted: request !== xhr });
      });
      xhr.addEventListener("error", () => resolve({ status: 0, payload: {}, aborted: request !== xhr }));
      xhr.addEventListener("abort", () => resolve({ status: 0, payload: {}, aborted: true }));
      xhr.send(body);
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (request || !uploadUrl || fileIsBad) return;
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
    if (takenOn) body.append("taken_on", takenOn);

    showError("");
    showProgress(0, file.size);
    const sending = send(body);
    setBusy(true);
    const { status, payload, aborted } = await sending;
    if (aborted) return; // Cancel (or closing the modal) has said what happened.
    request = null;
    setBusy(false);
    showProgress(null);
    if (status === 0) {
      showError("We could not reach Instagender. Please check your connection and try again.");
      return;
    }
    if (status < 200 || status >= 300) {
      const message = payload.error || "Something went wrong on our side. Please try again in a minute.";
      // A refused file stays refused: only a server hiccup or rate limit is worth retrying as is.
      showError(message, { fileRefused: status >= 400 && status < 500 && status !== 429 });
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
      const added = `The scan was added to ${babyPhrase}${week}.`;
      announce([added, ...notices].join(" "), notices.length ? "warning" : "success");
    }
    modal().hide();
  });
}
