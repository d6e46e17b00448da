//! Scenario tests of the meta group: users, sessions, roles, bans and their audit.

mod common;

use auction_statemachine::command::Op;
use auction_statemachine::outcome::Outcome;
use auction_statemachine::{query, Role};
use common::*;

#[test]
fn emails_are_unique_regardless_of_case_and_spaces() {
    let mut w = World::meta();
    assert!(w.register(ALICE, "Alice@Example.com").is_ok());
    assert_eq!(
        w.register(BOB, "  alice@example.COM ")
            .map(|_| ())
            .map_err(|r| r.code()),
        Err("EMAIL_TAKEN")
    );
    let alice = query::user_by_email(&w.kv, "ALICE@example.com")
        .expect("read")
        .expect("found");
    assert_eq!(
        (alice.id, alice.email.as_str(), alice.role),
        (ALICE, "alice@example.com", Role::User)
    );
}

#[test]
fn registration_validates_email_and_display_name() {
    let mut w = World::meta();
    for bad in [
        "",
        "no-at-sign",
        "@example.com",
        "alice@",
        "a b@example.com",
        "a@b@c",
    ] {
        let result = w.register(ALICE, bad).map(|_| ()).map_err(|r| r.code());
        assert_eq!(result, Err("VALIDATION_FAILED"), "{bad:?}");
    }
    assert!(query::users(&w.kv, None, 10).expect("read").is_empty());
}

#[test]
fn sessions_expire_and_logout_deletes_them() {
    let mut w = World::meta();
    w.register(ALICE, "alice@example.com").expect("registered");
    let token = vec![7u8; 32];
    let created = w.run(Op::CreateSession {
        token_hash: token.clone(),
        user_id: ALICE,
        expires_at: T0 + HOUR,
    });
    assert!(matches!(created.result, Ok(Outcome::Session(_))));
    assert_eq!(
        query::session(&w.kv, &token, w.now)
            .expect("read")
            .map(|s| s.user_id),
        Some(ALICE)
    );
    assert_eq!(
        query::session(&w.kv, &token, T0 + HOUR).expect("read"),
        None,
        "expired at its expiry"
    );
    w.run(Op::DeleteSession {
        token_hash: token.clone(),
    });
    assert_eq!(query::session(&w.kv, &token, w.now).expect("read"), None);
    assert!(
        w.run(Op::DeleteSession { token_hash: token })
            .result
            .is_ok(),
        "logging out twice is fine"
    );
}

#[test]
fn expired_sessions_are_purged_by_the_tick() {
    let mut w = World::meta();
    w.register(ALICE, "alice@example.com").expect("registered");
    w.run(Op::CreateSession {
        token_hash: vec![1; 32],
        user_id: ALICE,
        expires_at: T0 + HOUR,
    });
    w.run(Op::CreateSession {
        token_hash: vec![2; 32],
        user_id: ALICE,
        expires_at: T0 + 3 * HOUR,
    });
    w.advance(2 * HOUR);
    w.tick();
    assert_eq!(
        query::session(&w.kv, &[2; 32], w.now)
            .expect("read")
            .map(|s| s.user_id),
        Some(ALICE)
    );
    assert_eq!(
        query::session(&w.kv, &[1; 32], T0).expect("read"),
        None,
        "the expired session is gone"
    );
    let sessions =
        w.kv.iter()
            .filter(|(key, _)| key.first() == Some(&b'T'))
            .count();
    assert_eq!(sessions, 1, "only the live session is stored");
}

#[test]
fn sessions_need_an_existing_user_and_a_future_expiry() {
    let mut w = World::meta();
    let missing = w.run(Op::CreateSession {
        token_hash: vec![1; 32],
        user_id: BOB,
        expires_at: T0 + HOUR,
    });
    assert_eq!(
        missing.result.map(|_| ()).map_err(|r| r.code()),
        Err("USER_NOT_FOUND")
    );
    w.register(ALICE, "alice@example.com").expect("registered");
    let past = w.run(Op::CreateSession {
        token_hash: vec![1; 32],
        user_id: ALICE,
        expires_at: T0,
    });
    assert_eq!(
        past.result.map(|_| ()).map_err(|r| r.code()),
        Err("VALIDATION_FAILED")
    );
}

#[test]
fn roles_and_bans_change_the_user_and_are_audited() {
    let mut w = World::meta();
    w.register(ADMIN, "admin@example.com").expect("registered");
    w.register(ALICE, "alice@example.com").expect("registered");
    assert!(w
        .run(Op::SetRole {
            user_id: ADMIN,
            role: Role::Admin,
            actor: None
        })
        .result
        .is_ok());
    let ban = w.run(Op::BanUser {
        user_id: ALICE,
        banned: true,
        reason: Some("shill bidding".to_owned()),
        admin: ADMIN,
    });
    assert!(ban.result.is_ok());
    let alice = query::user(&w.kv, ALICE).expect("read").expect("found");
    assert!(alice.banned);
    assert_eq!(alice.ban_reason.as_deref(), Some("shill bidding"));
    let audit = query::audit_log(&w.kv, None, 10).expect("read");
    let actions: Vec<&str> = audit.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["user.ban", "user.role"], "newest first");
    assert_eq!(audit[0].actor_id, ADMIN);
    let unban = w.run(Op::BanUser {
        user_id: ALICE,
        banned: false,
        reason: None,
        admin: ADMIN,
    });
    assert!(unban.result.is_ok());
    assert!(
        !query::user(&w.kv, ALICE)
            .expect("read")
            .expect("found")
            .banned
    );
}
