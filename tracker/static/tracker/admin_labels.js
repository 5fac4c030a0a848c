// Accessible names for the admin's widgets that Django and its select2 leave without one, so
// that a screen reader tells each field apart: autocompletes, the search boxes of pickers,
// the date and time halves of a date-time field, and the cells of tabular inlines (named by
// their column). The admin's own scripts draw these widgets at load and redraw them later
// (a new inline row, a choice made), so the names are given again after every redraw.
"use strict";
(function () {
  function bare(text) {
    return text.replace(/[:\s]+$/, "").trim();
  }

  function labelFor(id) {
    return id ? document.querySelector(`label[for="${CSS.escape(id)}"]`) : null;
  }

  function nameAutocompletes() {
    document.querySelectorAll("select.admin-autocomplete").forEach((select) => {
      const label = labelFor(select.id);
      const widget = select.nextElementSibling;
      if (!label || !widget || !widget.classList.contains("select2")) {
        return;
      }
      if (!label.id) {
        label.id = `${select.id}_label`;
      }
      widget.querySelectorAll(".select2-selection").forEach((box) => {
        const shown = box.querySelector(".select2-selection__rendered[id]");
        box.setAttribute("aria-labelledby", shown ? `${label.id} ${shown.id}` : label.id);
        if (shown) {
          shown.setAttribute("aria-labelledby", label.id);
        }
      });
      widget.querySelectorAll(".select2-search__field").forEach((field) => {
        field.setAttribute("aria-label", bare(label.textContent));
      });
      widget.querySelectorAll("ul.select2-selection__rendered").forEach((list) => {
        list.setAttribute("role", "presentation");
      });
    });
  }

  function nameDateTimeHalves() {
    document.querySelectorAll("p.datetime input").forEach((input) => {
      if (input.hasAttribute("aria-label")) {
        return;
      }
      const row = input.closest(".form-row, .fieldBox, td");
      const label = row && row.querySelector("label");
      const before = input.previousSibling;
      const half = before && before.nodeType === Node.TEXT_NODE ? bare(before.textContent) : "";
      const name = [label ? bare(label.textContent) : "", half].filter(Boolean).join(", ");
      if (name) {
        input.setAttribute("aria-label", name);
      }
    });
  }

  function nameInlineCells() {
    document.querySelectorAll(".tabular table").forEach((table) => {
      const headers = Array.from(table.querySelectorAll("thead th"));
      table.querySelectorAll("tbody tr.form-row").forEach((row, index) => {
        row.querySelectorAll("input:not([type=hidden]), select, textarea").forEach((field) => {
          if (field.hasAttribute("aria-label") || labelFor(field.id)) {
            return;
          }
          const cell = field.closest("td");
          const header = cell && headers[cell.cellIndex];
          const column = header ? bare(header.textContent) : "";
          if (column) {
            field.setAttribute("aria-label", `${column} (${index + 1})`);
          }
        });
      });
    });
  }

  function nameFilterIcons() {
    // SelectFilter's magnifier carries an aria-label, which a plain span may not have.
    document.querySelectorAll(".search-label-icon[aria-label]").forEach((icon) => {
      icon.setAttribute("role", "img");
    });
  }

  function nameAll() {
    nameAutocompletes();
    nameDateTimeHalves();
    nameInlineCells();
    nameFilterIcons();
  }

  document.addEventListener("DOMContentLoaded", () => {
    nameAll();
    new MutationObserver(nameAll).observe(document.body, { childList: true, subtree: true });
  });
  window.addEventListener("load", nameAll);
})();
