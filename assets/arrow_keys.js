// ← / → press the tour's Back and Next buttons whatever has the focus (except a text field, where the arrows
// move the cursor), and from a new tab's first moment: there the buttons' code may still be loading, so a key
// pressed before they show is kept and pressed as soon as they do. This listener sees the keys before
// Streamlit's own shortcuts and stops them, so one key press is one step, never two.
(() => {
  if (window.__prismArrowKeys) return;
  window.__prismArrowKeys = true;
  const WAIT_MS = 30000;  // how long a key pressed before the buttons exist is kept
  const KEYS = { ArrowLeft: "tour_back", ArrowRight: "tour_next" };
  const typing = (el) => !!el && (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
    (el.tagName === "INPUT" && !["checkbox", "radio", "button", "submit", "range"].includes(el.type)));
  const onTour = () => !!document.querySelector(".st-key-tour_notes_button, .st-key-tour_file") ||
    location.pathname.replace(/\/+$/, "").endsWith("/tour");
  let pending = null;
  const press = (key, since) => {
    const button = document.querySelector(`.st-key-${key} button`);
    if (button) {
      pending = null;
      if (!button.disabled) button.click();
    } else if (Date.now() - since < WAIT_MS && pending === key) {
      setTimeout(() => press(key, since), 100);
    }
  };
  window.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.shiftKey) return;
    const key = KEYS[event.key];
    if (!key || typing(event.target) || typing(document.activeElement) || !onTour()) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    if (pending) return;  // a key is already waiting for its button
    pending = key;
    press(key, Date.now());
  }, true);
})();
