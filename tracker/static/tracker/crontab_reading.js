// The periodic task form's "Crontab translation" row follows the crontab chosen above it.
// The readings come from the page (django-celery-beat's readable_crontabs, as JSON); this is
// a file because the admin's Content-Security-Policy allows no inline script.
"use strict";
{
  const readings = JSON.parse(document.getElementById("readable-crontabs").textContent);
  const crontab = document.getElementById("id_crontab");
  const reading = document.querySelector(".field-crontab_translation .readonly");
  if (crontab && reading) {
    crontab.addEventListener("change", () => {
      reading.textContent = readings[crontab.value] || "-";
    });
  }
}
