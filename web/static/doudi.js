// Doudi's pages work without this file; it adds conveniences: printing, the disease search on the stay
// form, overrides checked as they are typed, and a simulation's progress without reloading the page.
"use strict";
document.documentElement.classList.add("js");

function csrfToken() {
  const field = document.querySelector("input[name=csrf_token]");
  return field ? field.value : "";
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-print]")) {
    button.addEventListener("click", () => window.print());
  }

  // Disease lists: type a code or a name, choose a match to add its code to the diagnoses.
  const search = document.querySelector("[data-disease-search]");
  if (search) {
    const input = search.querySelector("input[type=search]");
    const list = search.querySelector("ul.matches");
    const target = document.getElementById("f-diagnoses");
    const lookUp = debounce(async () => {
      const q = input.value.trim();
      list.replaceChildren();
      if (!q) return;
      const answer = await fetch(`${input.dataset.url}?format=json&q=${encodeURIComponent(q)}`, { headers: { Accept: "application/json" } });
      if (!answer.ok) return;
      const { matches } = await answer.json();
      for (const match of matches) {
        const item = document.createElement("li");
        const add = document.createElement("button");
        add.type = "button";
        add.textContent = `${list.dataset.addLabel} ${match.code}`;
        add.addEventListener("click", () => {
          const codes = target.value.split(/[,，\s]+/).filter(Boolean);
          if (!codes.includes(match.code)) codes.push(match.code);
          target.value = codes.join(", ");
          target.focus();
        });
        const text = document.createElement("span");
        text.textContent = ` ${match.codes} ${match.name}${match.name_en ? " / " + match.name_en : ""} (${match.list})`;
        item.append(add, text);
        list.append(item);
      }
    }, 250);
    input.addEventListener("input", lookUp);
    input.addEventListener("keydown", (event) => { if (event.key === "Enter") event.preventDefault(); });
  }

  // A reform's overrides: every problem, in the command line's words, while they are typed.
  const overrides = document.querySelector("[data-check-url]");
  if (overrides) {
    const out = document.getElementById(overrides.dataset.checkOutput);
    const check = debounce(async () => {
      const body = new FormData();
      body.append("overrides", overrides.value);
      body.append("csrf_token", csrfToken());
      const answer = await fetch(overrides.dataset.checkUrl, { method: "POST", body, headers: { "X-CSRF-Token": csrfToken() } });
      if (!answer.ok) return;
      const found = await answer.json();
      out.replaceChildren();
      out.className = found.ok ? "override-ok" : "override-problems";
      if (found.ok) {
        out.textContent = found.checked ? out.dataset.okText : "";
        overrides.removeAttribute("aria-invalid");
        return;
      }
      overrides.setAttribute("aria-invalid", "true");
      const list = document.createElement("ul");
      for (const problem of found.problems) {
        const item = document.createElement("li");
        item.textContent = problem.message;
        list.append(item);
      }
      out.append(list);
    }, 400);
    overrides.addEventListener("input", check);
  }

  // A running simulation: move the bar, then show the results when the job is done.
  const job = document.querySelector("[data-job-status]");
  if (job) {
    const bar = job.querySelector("progress");
    const stage = job.querySelector("[data-stage]");
    const poll = async () => {
      const answer = await fetch(job.dataset.jobStatus, { headers: { Accept: "application/json" } });
      if (!answer.ok) { setTimeout(poll, 2000); return; }
      const status = await answer.json();
      bar.value = status.progress;
      bar.textContent = `${Math.round(status.progress * 100)}%`;
      if (stage) stage.textContent = status.stage_text;
      if (status.state === "done" || status.state === "failed") { window.location.reload(); return; }
      setTimeout(poll, 700);
    };
    setTimeout(poll, 500);
  }
});
