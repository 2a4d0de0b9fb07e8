// The home page: dates and prices in the visitor's own language, format and time zone
// (the server wrote them in UTC and in plain figures for a page without scripts).
"use strict";

(function () {
  const when = new Intl.DateTimeFormat(LANG, { dateStyle: "full", timeStyle: "short" });
  for (const time of document.querySelectorAll("time[datetime]")) {
    const at = new Date(time.getAttribute("datetime"));
    if (!Number.isNaN(at.getTime())) time.textContent = when.format(at);
  }
  for (const prices of document.querySelectorAll(".prices")) {
    const { low, high, currency } = prices.dataset;
    prices.textContent = low === high
      ? t("home.price", { price: money(Number(low), currency) })
      : t("home.price_range", { low: money(Number(low), currency), high: money(Number(high), currency) });
  }
})();
