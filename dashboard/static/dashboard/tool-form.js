// Tool form: show only the fieldset of the chosen kind. Without JavaScript all are shown.
const form = document.querySelector("form.tool-form");
const kindSelect = form?.querySelector("select[name=kind]");

function showChosenKind() {
  for (const fieldset of form.querySelectorAll("fieldset[data-kind]")) {
    // A fieldset with errors stays visible so the message is never hidden.
    const hasErrors = fieldset.querySelector(".errorlist") !== null;
    fieldset.hidden = fieldset.dataset.kind !== kindSelect.value && !hasErrors;
  }
}

if (form && kindSelect) {
  kindSelect.addEventListener("change", showChosenKind);
  showChosenKind();
}
