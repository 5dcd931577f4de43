import { describe, expect, it } from 'vitest';
import { mayCarryRefusal, replyAllowed, replyRuleFrom } from './reply-subject.js';

describe('replyAllowed', () => {
  it("takes the asking tenant's own inbox in both modes", () => {
    for (const rule of ['tenant-inbox', 'tenant-or-default-inbox'] as const) {
      expect(replyAllowed('sluice.inbox.acme.Xy12.3', 'acme', rule)).toBe(true);
    }
  });

  it('takes the default _INBOX (and _R_ of a service import) only when NATS runs without Sluice users', () => {
    expect(replyAllowed('_INBOX.abc.7', 'acme', 'tenant-or-default-inbox')).toBe(true);
    expect(replyAllowed('_R_.abc.def', 'acme', 'tenant-or-default-inbox')).toBe(true);
    expect(replyAllowed('_INBOX.abc.7', 'acme', 'tenant-inbox')).toBe(false);
    expect(replyAllowed('_R_.abc.def', 'acme', 'tenant-inbox')).toBe(false);
  });

  it("refuses another tenant's inbox, a tenant whose id starts alike, and every other subject", () => {
    for (const rule of ['tenant-inbox', 'tenant-or-default-inbox'] as const) {
      for (const subject of [
        'sluice.inbox.beta.x',
        'sluice.inbox.acmeco.x',
        'sluice.inbox.acme',
        'sluice.inbox.acme.',
        'sluice.evt.chat.completed.acme',
        'sluice.results.req_x',
        'sluice.cancel.req_x',
        '$JS.API.STREAM.DELETE.SLUICE_EVENTS',
        '$KV.sluice_control.config',
        'custom.inbox.x',
        '_INBOX',
        '_INBOX.',
      ]) {
        expect([subject, replyAllowed(subject, 'acme', rule)]).toEqual([subject, false]);
      }
    }
  });

  it('refuses wildcards, empty tokens and whitespace even under the own prefix', () => {
    for (const subject of ['sluice.inbox.acme.*', 'sluice.inbox.acme.>', 'sluice.inbox.acme..x', 'sluice.inbox.acme.a b', 'sluice.inbox.acme.x\r\n']) {
      expect([subject, replyAllowed(subject, 'acme', 'tenant-or-default-inbox')]).toEqual([subject, false]);
    }
  });
});

describe('mayCarryRefusal', () => {
  it("answers a refusal on a client's own odd prefix, never inside sluice.* or $*", () => {
    expect(mayCarryRefusal('custom.inbox.x')).toBe(true);
    expect(mayCarryRefusal('_INBOX.abc.1')).toBe(true);
    for (const subject of [
      'sluice.evt.chat.completed.acme',
      'sluice.inbox.beta.x',
      'sluice.results.r',
      '$JS.API.STREAM.DELETE.SLUICE_EVENTS',
      '$SYS.REQ.SERVER.PING',
      'a.*',
      'a..b',
    ]) {
      expect([subject, mayCarryRefusal(subject)]).toEqual([subject, false]);
    }
  });
});

describe('replyRuleFrom', () => {
  it('reads SLUICE_NATS_USERS: 1 is tenant inboxes only, unset or 0 also the default inbox, anything else stops the service', () => {
    expect(replyRuleFrom({ SLUICE_NATS_USERS: '1' })).toBe('tenant-inbox');
    expect(replyRuleFrom({})).toBe('tenant-or-default-inbox');
    expect(replyRuleFrom({ SLUICE_NATS_USERS: '0' })).toBe('tenant-or-default-inbox');
    expect(() => replyRuleFrom({ SLUICE_NATS_USERS: 'yes' })).toThrow(/SLUICE_NATS_USERS/);
  });
});
