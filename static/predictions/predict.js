// The prediction part of each baby's card.
// - Scans are uploaded with fetch (babies/upload.js adds the thumbnail without a page load), so
//   watch each baby's scan list: once a scan is added, the Predict button works and an earlier
//   prediction is marked as out of date, as the server would say after a reload.
// - While a prediction runs, the button says so and cannot be pressed twice.

for (const panel of document.querySelectorAll("[data-prediction-panel]")) {
  const babyId = panel.dataset.babyId;
  const button = panel.querySelector("[data-predict-button]");
  const label = panel.querySelector("[data-predict-label]");
  const list = document.querySelector(`[data-scan-list="${babyId}"]`);

  if (list && button) {
    new MutationObserver((mutations) => {
      if (!mutations.some((mutation) => mutation.addedNodes.length > 0)) return;
      button.disabled = false;
      const stale = panel.querySelector("[data-stale-notice]");
      if (stale && panel.dataset.hasPrediction === "true") {
        stale.hidden = false;
        button.classList.replace("btn-outline-secondary", "btn-brand");
      }
      const noScans = panel.querySelector("[data-no-scans-hint]");
      const ready = panel.querySelector("[data-ready-hint]");
      if (noScans) noScans.hidden = true;
      if (ready) ready.hidden = false;
    }).observe(list, { childList: true });
  }

  const form = panel.querySelector("[data-predict-form]");
  if (form && button) {
    form.addEventListener("submit", () => {
      // Disabled after the submit has been dispatched, so the form is still sent.
      setTimeout(() => {
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
        if (label) label.textContent = "Predicting…";
      });
    });
  }
}
