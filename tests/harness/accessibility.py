"""Accessibility checks any page can be put through: accessible names, WCAG AA contrast, no sideways scroll."""

from __future__ import annotations

from typing import Any

INTERACTIVE_ROLES = {"button", "link", "textbox", "combobox", "checkbox", "meter", "ListBox", "listbox", "radio"}


# Colours are read once CSS transitions have settled: a button that has just
# changed state is mid-way through its 120 ms background fade, and the blend
# of the two backgrounds is not what the agent reads (CI once caught 2.50:1).
CONTRAST_PROBLEMS = """async () => {
  const fading = document.getAnimations().filter((a) => a instanceof CSSTransition);
  await Promise.all(fading.map((a) => a.finished.catch(() => null)));
  const parse = (c) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(c);
    if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(/[\\s,/]+/).filter(Boolean).map(Number);
    return { r, g, b, a };
  };
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const luminance = ({ r, g, b }) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return { r: 255, g: 255, b: 255 };
  };
  const problems = [];
  for (const element of document.querySelectorAll('body *')) {
    const ownText = [...element.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!ownText || !element.checkVisibility()) continue;
    const style = getComputedStyle(element);
    const [l1, l2] = [luminance(parse(style.color)), luminance(background(element))];
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (Number(style.fontWeight) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) problems.push(`${element.dataset.testid ?? element.tagName} ${ratio.toFixed(2)}`);
  }
  return problems;
}"""


async def unnamed_controls(page: Any) -> list[str]:
    """Interactive nodes of Chromium's accessibility tree that have no accessible name."""
    cdp = await page.context.new_cdp_session(page)
    tree = await cdp.send("Accessibility.getFullAXTree")
    await cdp.detach()
    missing = []
    for node in tree["nodes"]:
        role = node.get("role", {}).get("value")
        if node.get("ignored") or role not in INTERACTIVE_ROLES:
            continue
        if not str(node.get("name", {}).get("value", "")).strip():
            missing.append(role)
    return missing


async def check_accessibility(page: Any, where: str) -> None:
    assert await unnamed_controls(page) == [], f"{where}: controls without an accessible name"
    assert await page.evaluate(CONTRAST_PROBLEMS) == [], f"{where}: text below WCAG AA contrast"
    overflow = await page.evaluate("document.documentElement.scrollWidth - innerWidth")
    assert overflow <= 0, f"{where}: the page scrolls sideways by {overflow}px"
