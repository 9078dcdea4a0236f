// Opens the emailed links of a live Portcullis in Debian's headless Chromium
// and uses the built-in pages as a person would. Run by the end-to-end tests
// (tests/e2e/pages.rs) with:
//   PORTCULLIS_URL  the service
//   VERIFY_LINK     the link of the verification email
//   RESET_LINK      the link of the reset email (same account)
//   ACCESS_TOKEN    a token of that account, to read /v1/auth/me beside the page
//   WEAK_PASSWORD, NEW_PASSWORD
//   SCREENSHOTS     a folder for one picture of each page (test artifacts)
//   CHROMIUM        the browser (default /usr/bin/chromium)
// Exits non-zero, saying why, when the pages do not behave.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("PORTCULLIS_URL");
const shots = env("SCREENSHOTS");
mkdirSync(shots, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// Waits for `selector`; on a timeout, says what the page showed instead.
async function expect(page, selector) {
  try {
    await page.locator(selector).first().waitFor({ timeout: 10000 });
  } catch (error) {
    const shown = await page.locator("#outcome").textContent().catch(() => "(no #outcome)");
    throw new Error(`${selector} did not appear; the page shows: ${shown}`);
  }
}

async function me() {
  const response = await fetch(`${base}/v1/auth/me`, {
    headers: { Authorization: `Bearer ${env("ACCESS_TOKEN")}` },
  });
  check(response.status === 200, `/me answered ${response.status}`);
  return response.json();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
const problems = [];
try {
  const page = await browser.newPage();
  // A page that tried an inline script or style, or another origin, would
  // show a Content-Security-Policy violation here.
  // (Chromium also reports every 4xx as a failed resource load: the refused
  // password's 422 and the favicon's 404 are expected.)
  page.on("console", (message) => {
    const text = message.text();
    if (message.type() === "error" && !text.startsWith("Failed to load resource")) {
      problems.push(`console: ${text}`);
    }
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));

  // The verification page: opening it spends nothing; the button does.
  const opened = await page.goto(env("VERIFY_LINK"));
  check(opened.status() === 200, `the verification page answered ${opened.status()}`);
  check(opened.headers()["content-security-policy"]?.includes("script-src 'self'"), "the page has a strict CSP");
  await expect(page, "#verify");
  check((await me()).email_verified === false, "opening the link verified the address: a GET spent the token");
  await page.screenshot({ path: join(shots, "verify-email.png"), fullPage: true });
  await page.locator("#verify").click();
  await expect(page, "#outcome.success");
  const verified = await page.locator("#outcome").textContent();
  check(verified.includes("is verified"), `the page said: ${verified}`);
  check((await me()).email_verified === true, "the button did not verify the address");
  await page.screenshot({ path: join(shots, "verify-email-done.png"), fullPage: true });

  // The reset page: the rules are shown; a password that breaks one is
  // refused with that rule; a good one is taken.
  await page.goto(env("RESET_LINK"));
  await expect(page, "#rules li");
  const rules = await page.locator("#rules li").allTextContents();
  check(rules.length > 0, "the rules are listed");
  await page.fill("#new-password", env("WEAK_PASSWORD"));
  await page.fill("#confirm-password", env("WEAK_PASSWORD"));
  await page.click("#submit");
  await expect(page, "#outcome.error li");
  const broken = await page.locator("#outcome li").allTextContents();
  check(broken.length > 0 && broken.every((rule) => rules.includes(rule)), `refused with ${broken}, rules ${rules}`);
  await page.screenshot({ path: join(shots, "reset-password-refused.png"), fullPage: true });
  await page.fill("#new-password", env("NEW_PASSWORD"));
  await page.fill("#confirm-password", env("NEW_PASSWORD"));
  await page.click("#submit");
  await expect(page, "#outcome.success");
  check(await page.locator("#reset-form").isHidden(), "the form is gone once the password is set");
  await page.screenshot({ path: join(shots, "reset-password.png"), fullPage: true });

  check(problems.length === 0, problems.join("\n"));

  // Without a token: a page that says so, and no form (Chromium reports the
  // 400 on the console; that is expected here).
  const bare = await page.goto(`${base}/verify-email`);
  check(bare.status() === 400, `a page without a token answered ${bare.status()}`);
  check((await page.locator("#verify").count()) === 0, "no button without a token");
  await expect(page, "#outcome.error");
  console.log("pages ok");
} finally {
  await browser.close();
}
