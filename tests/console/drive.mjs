// Drives the Portico owner console in Debian's headless Chromium, one action per run:
//
//   node drive.mjs URL accept|accept-view-only|refuse TEXT [SCREENSHOT.png]
//       wait for the pending request whose row contains TEXT, then click the button
//   node drive.mjs URL allow|deny TEXT [SCREENSHOT.png]
//       wait for the file/clipboard request whose row contains TEXT, then answer it
//   node drive.mjs URL kick TEXT [SCREENSHOT.png]
//       wait for the live session whose row contains TEXT, then click Kick
//   node drive.mjs URL session TEXT [SCREENSHOT.png]
//       wait for the live session whose row contains TEXT; print it (no click)
//   node drive.mjs URL show [SCREENSHOT.png]
//       screenshot only
//
// Prints the text of the row it acted on, for the caller's assertions.
import { chromium } from "playwright-core";

const [url, action, text, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  await page.goto(url);
  let row;
  if (action === "accept" || action === "accept-view-only" || action === "refuse") {
    row = page.locator("#pending tr", { hasText: text });
    await row.waitFor({ timeout: 20000 });
    if (shot) await page.screenshot({ path: shot, fullPage: true });
    console.log(await row.innerText());
    const name = action === "refuse" ? /^Refuse/ : action === "accept" ? /^Accept (?!.*view-only)/ : /view-only$/;
    await row.getByRole("button", { name }).click();
    // The request leaves the list once answered.
    await page.locator("#pending tr", { hasText: text }).waitFor({ state: "detached", timeout: 10000 });
    if (action !== "refuse") {
      await page.locator("#sessions tr[data-session]").first().waitFor({ timeout: 10000 });
    }
  } else if (action === "allow" || action === "deny") {
    row = page.locator("#services tr", { hasText: text });
    await row.waitFor({ timeout: 20000 });
    if (shot) await page.screenshot({ path: shot, fullPage: true });
    console.log(await row.innerText());
    await row.getByRole("button", { name: action === "allow" ? /^Allow/ : /^Deny/ }).click();
    await page.locator("#services tr", { hasText: text }).waitFor({ state: "detached", timeout: 10000 });
  } else if (action === "kick") {
    row = page.locator("#sessions tr", { hasText: text });
    await row.waitFor({ timeout: 20000 });
    if (shot) await page.screenshot({ path: shot, fullPage: true });
    console.log(await row.innerText());
    await row.getByRole("button", { name: /^Kick/ }).click();
    await page.locator("#sessions tr", { hasText: text }).waitFor({ state: "detached", timeout: 10000 });
  } else if (action === "session") {
    row = page.locator("#sessions tr", { hasText: text });
    await row.waitFor({ timeout: 20000 });
    if (shot) await page.screenshot({ path: shot, fullPage: true });
    console.log(await row.innerText());
  } else if (action === "show") {
    await page.waitForTimeout(500);
    if (text) await page.screenshot({ path: text, fullPage: true });
  } else {
    throw new Error("unknown action " + action);
  }
} finally {
  await browser.close();
}
