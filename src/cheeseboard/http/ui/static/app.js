// Progressive enhancement only: every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons: write the command or hash to the clipboard, say so briefly.
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const text = button.getAttribute("data-copy");
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch (err) {
        const code = button.parentElement.querySelector("code");
        if (code) window.getSelection().selectAllChildren(code);
        button.textContent = "Press Ctrl+C";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 1600);
    });
  }

  // Tabs: without script every panel shows under its heading; with it, one at a time.
  for (const tabs of document.querySelectorAll("[data-tabs]")) {
    tabs.classList.add("js-tabs");
    const buttons = [...tabs.querySelectorAll("[role=tab]")];
    const select = (chosen) => {
      for (const button of buttons) {
        const on = button === chosen;
        button.setAttribute("aria-selected", on ? "true" : "false");
        button.tabIndex = on ? 0 : -1;
        document.getElementById(button.getAttribute("aria-controls")).hidden = !on;
      }
    };
    buttons.forEach((button, i) => {
      button.addEventListener("click", () => select(button));
      button.addEventListener("keydown", (event) => {
        const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
        if (step) {
          const next = buttons[(i + step + buttons.length) % buttons.length];
          select(next);
          next.focus();
        }
      });
    });
    if (buttons.length) select(buttons[0]);
  }

  // Destructive forms ask first.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  }
});
