// js_on_load of the Sources panel (a gr.HTML): `element` is the panel's root.
// A click on a citation marker [n] in the chat (a link to #src-<turn>-<n>) shows that
// answer's sources, opens passage n in its context and scrolls it into view. Nothing here
// inserts text into the page: the panel's HTML is built and escaped on the server.
(() => {
  const reveal = (id) => {
    const match = /^src-(\d+)-(\d+)$/.exec(id);
    if (!match) return false;
    const sections = element.querySelectorAll("section.src-turn[data-turn]");
    let found = false;
    sections.forEach((section) => {
      const mine = section.dataset.turn === match[1];
      section.hidden = !mine;
      found = found || mine;
    });
    const card = element.querySelector(`details#${id}`);
    if (!found || !card) return false;
    element.querySelectorAll("details.src-card[open]").forEach((other) => {
      if (other !== card) other.open = false;
    });
    card.open = true;
    card.classList.remove("flash");
    void card.offsetWidth; // restart the animation
    card.classList.add("flash");
    card.scrollIntoView({ behavior: "smooth", block: "nearest" });
    return true;
  };
  if (window.__ragSourcesClick) document.removeEventListener("click", window.__ragSourcesClick, true);
  window.__ragSourcesClick = (event) => {
    const link = event.target instanceof Element ? event.target.closest('a[href^="#src-"]') : null;
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    reveal(link.getAttribute("href").slice(1));
  };
  document.addEventListener("click", window.__ragSourcesClick, true);
})();
