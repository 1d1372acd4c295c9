// Issue 11, finding 10 (second half): the invitation email has an HTML body, and the names users
// choose (the organization's, the inviter's) are escaped in it, never markup. Built from a row the
// way the worker builds it (workers/tasks/send_invitation_email.ts).

import { invitationMessage } from "../../workers/tasks/send_invitation_email.ts";
import { escapeHtml } from "../../workers/mail.ts";

const mail = { appUrl: "https://app.example.test", smtpUrl: null, outboxDir: "/nonexistent", from: "t <t@example.test>" };

test("organization and inviter names with markup appear escaped in the HTML body and verbatim in the text", () => {
  const evilOrg = `Acme <script>alert(1)</script> & "Co" <a href="https://phish.example">click</a>`;
  const evilInviter = `<img src=x onerror=alert(2)>Mallory's`;
  const message = invitationMessage(
    { email: "victim@example.com", role: "member", organization_name: evilOrg, organization_slug: "acme", inviter_name: evilInviter, expires_at: new Date("2026-12-01T00:00:00Z") },
    "a".repeat(64),
    mail,
  );
  expect(message.html).toContain(escapeHtml(evilOrg));
  expect(message.html).toContain(escapeHtml(evilInviter));
  expect(message.html).not.toContain("<script");
  expect(message.html).not.toContain("<img");
  expect(message.html).not.toContain('href="https://phish.example"');
  // the only link is the accept link, from APP_URL
  expect([...message.html.matchAll(/href="([^"]*)"/g)].map((m) => m[1])).toEqual([
    `https://app.example.test/invitations/accept?token=${"a".repeat(64)}`,
  ]);
  expect(message.text).toContain(evilOrg);
  expect(message.subject).toBe(`You are invited to join ${evilOrg}`);
});

test("escapeHtml covers the five characters that matter in content and quoted attributes", () => {
  expect(escapeHtml(`&<>"'`)).toBe("&amp;&lt;&gt;&quot;&#39;");
});
