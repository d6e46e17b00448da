//! Scenario tests of bans and sessions (RULES.md rules 33 to 37) and of the cluster settings
//! fixed at init (rule 38).

mod common;

use auction_statemachine::command::{AuctionChanges, Op};
use auction_statemachine::meta::{cluster_settings, ClusterSettings, SESSIONS_PER_USER_MAX};
use auction_statemachine::outcome::Outcome;
use auction_statemachine::{keys, query, Rejection, Role, UserId};
use common::*;

fn token(user: UserId, n: u8) -> Vec<u8> {
    let mut token = user.0.as_bytes().to_vec();
    token.extend_from_slice(&[n; 16]);
    token
}

fn login(w: &mut World, user: UserId, n: u8) -> Result<Outcome, Rejection> {
    w.run(Op::CreateSession {
        token_hash: token(user, n),
        user_id: user,
        expires_at: w.now + HOUR,
    })
    .result
}

fn has_session(w: &World, user: UserId, n: u8) -> bool {
    query::session(&w.kv, &token(user, n), w.now)
        .expect("read")
        .is_some()
}

/// Entries of `user`'s session index.
fn indexed_sessions(w: &World, user: UserId) -> usize {
    let prefix = keys::user_sessions_prefix(user);
    w.kv.iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .count()
}

fn ban(w: &mut World, user: UserId, banned: bool, admin: UserId) -> Result<Outcome, Rejection> {
    w.run(Op::BanUser {
        user_id: user,
        banned,
        reason: banned.then(|| "shill bidding".to_owned()),
        admin,
    })
    .result
}

fn grant(
    w: &mut World,
    user: UserId,
    role: Role,
    actor: Option<UserId>,
) -> Result<Outcome, Rejection> {
    w.run(Op::SetRole {
        user_id: user,
        role,
        actor,
    })
    .result
}

/// A meta group with an admin, alice and bob registered.
fn meta_world() -> World {
    let mut w = World::meta();
    for (id, email) in [
        (ADMIN, "admin@example.com"),
        (ALICE, "alice@example.com"),
        (BOB, "bob@example.com"),
    ] {
        w.register(id, email).expect("registered");
    }
    grant(&mut w, ADMIN, Role::Admin, None).expect("the cluster token grants the first admin");
    w
}

#[test]
fn a_ban_ends_every_session_of_the_user_and_no_one_elses() {
    let mut w = meta_world();
    for n in 1..=3 {
        login(&mut w, ALICE, n).expect("alice logs in");
        w.advance(SECOND);
    }
    login(&mut w, BOB, 1).expect("bob logs in");
    ban(&mut w, ALICE, true, ADMIN).expect("banned");
    for n in 1..=3 {
        assert!(!has_session(&w, ALICE, n), "alice's session {n} ended");
    }
    assert_eq!(indexed_sessions(&w, ALICE), 0, "her index is empty too");
    assert!(has_session(&w, BOB, 1), "bob's session is untouched");
}

#[test]
fn a_banned_user_cannot_log_in_and_an_unban_does_not_revive_old_sessions() {
    let mut w = meta_world();
    login(&mut w, ALICE, 1).expect("alice logs in");
    ban(&mut w, ALICE, true, ADMIN).expect("banned");
    assert_eq!(code(login(&mut w, ALICE, 2)), "USER_BANNED");
    ban(&mut w, ALICE, false, ADMIN).expect("unbanned");
    assert!(
        !has_session(&w, ALICE, 1),
        "the ban's end of a session is final"
    );
    login(&mut w, ALICE, 3).expect("after the unban she logs in again");
    assert!(has_session(&w, ALICE, 3));
}

#[test]
fn a_user_holds_at_most_the_session_cap_and_a_login_beyond_it_ends_the_oldest() {
    let mut w = meta_world();
    let cap = u8::try_from(SESSIONS_PER_USER_MAX).expect("small cap");
    for n in 0..=cap {
        login(&mut w, ALICE, n).expect("alice logs in");
        w.advance(1);
    }
    assert!(!has_session(&w, ALICE, 0), "the oldest session ended");
    assert!(
        (1..=cap).all(|n| has_session(&w, ALICE, n)),
        "the newest cap remain"
    );
    assert_eq!(indexed_sessions(&w, ALICE), SESSIONS_PER_USER_MAX);
}

#[test]
fn logout_and_expiry_remove_a_session_from_its_users_index() {
    let mut w = meta_world();
    login(&mut w, ALICE, 1).expect("alice logs in");
    login(&mut w, ALICE, 2).expect("alice logs in again");
    w.run(Op::DeleteSession {
        token_hash: token(ALICE, 1),
    });
    assert_eq!(indexed_sessions(&w, ALICE), 1, "logout removed its entry");
    w.advance(2 * HOUR);
    w.tick();
    assert_eq!(
        indexed_sessions(&w, ALICE),
        0,
        "the purge removed the expired one's"
    );
}

#[test]
fn a_banned_admin_keeps_the_role_but_cannot_use_it_until_unbanned() {
    let mut w = meta_world();
    grant(&mut w, ALICE, Role::Admin, Some(ADMIN)).expect("alice is made admin");
    ban(&mut w, ALICE, true, ADMIN).expect("alice banned");
    let alice = query::user(&w.kv, ALICE).expect("read").expect("found");
    assert_eq!(alice.role, Role::Admin, "the role is kept");
    assert_eq!(code(ban(&mut w, BOB, true, ALICE)), "USER_BANNED");
    assert_eq!(
        code(grant(&mut w, BOB, Role::Admin, Some(ALICE))),
        "USER_BANNED"
    );
    assert_eq!(
        code(ban(&mut w, ALICE, false, ALICE)),
        "USER_BANNED",
        "nor unban herself"
    );
    ban(&mut w, ALICE, false, ADMIN).expect("unbanned by another admin");
    ban(&mut w, BOB, true, ALICE).expect("the role works again");
}

#[test]
fn a_ban_or_a_role_change_needs_an_admin() {
    let mut w = meta_world();
    assert_eq!(code(ban(&mut w, BOB, true, ALICE)), "FORBIDDEN");
    assert_eq!(
        code(grant(&mut w, ALICE, Role::Admin, Some(ALICE))),
        "FORBIDDEN"
    );
    assert_eq!(
        code(grant(&mut w, ALICE, Role::Admin, Some(CAROL))),
        "FORBIDDEN",
        "unknown actor"
    );
    assert!(
        !query::user(&w.kv, BOB)
            .expect("read")
            .expect("found")
            .banned
    );
}

#[test]
fn a_banned_user_cannot_sell_create_edit_or_cancel() {
    let mut w = World::shard();
    let listed = w.create(|_| {});
    w.ban_in_shard(SELLER);
    assert_eq!(code(w.try_create(|_| {})), "USER_BANNED");
    let edit = w.run(Op::UpdateAuction {
        auction_id: listed,
        actor: SELLER,
        changes: AuctionChanges {
            title: Some("Renamed".to_owned()),
            ..AuctionChanges::default()
        },
    });
    assert_eq!(code(edit.result), "USER_BANNED");
    let cancel = w.run(Op::CancelAuction {
        auction_id: listed,
        actor: SELLER,
    });
    assert_eq!(code(cancel.result), "USER_BANNED");
    let stranger = w.run(Op::CancelAuction {
        auction_id: listed,
        actor: ALICE,
    });
    assert_eq!(
        code(stranger.result),
        "FORBIDDEN",
        "not the seller comes first"
    );
    w.bid(listed, ALICE, "10")
        .expect("others still bid on the listing");
}

#[test]
fn a_banned_user_cannot_bid_proxy_bid_or_buy_now_and_an_unban_restores_it() {
    let mut w = World::shard();
    let listed = w.create(|new| new.buy_now_price = Some("100.00".to_owned()));
    w.ban_in_shard(ALICE);
    assert_eq!(code(w.bid(listed, ALICE, "10")), "USER_BANNED");
    assert_eq!(code(w.proxy(listed, ALICE, "50")), "USER_BANNED");
    assert_eq!(code(w.buy_now(listed, ALICE)), "USER_BANNED");
    let unban = w.run(Op::SyncBan {
        user: ALICE,
        banned: false,
    });
    assert!(unban.result.is_ok());
    w.bid(listed, ALICE, "10").expect("unbanned, she bids");
}

#[test]
fn a_banned_admin_cannot_cancel_or_extend_auctions() {
    let mut w = World::shard();
    let listed = w.create(|_| {});
    w.ban_in_shard(ADMIN);
    let cancel = w.run(Op::AdminCancelAuction {
        auction_id: listed,
        admin: ADMIN,
        reason: "fraud".to_owned(),
    });
    assert_eq!(code(cancel.result), "USER_BANNED");
    let extend = w.run(Op::AdminExtendAuction {
        auction_id: listed,
        admin: ADMIN,
        end_time: w.now + 2 * HOUR,
    });
    assert_eq!(code(extend.result), "USER_BANNED");
    assert_eq!(w.auction(listed).end_time, w.now + HOUR, "nothing changed");
}

#[test]
fn the_shard_count_is_fixed_by_the_first_init() {
    let mut w = World::meta();
    let init = |w: &mut World, shard_count| w.run(Op::InitCluster { shard_count }).result;
    assert_eq!(cluster_settings(&w.kv).expect("read"), None);
    init(&mut w, 8).expect("the first init records the count");
    init(&mut w, 8).expect("initialising again with the same count is fine");
    let refused = init(&mut w, 4).expect_err("another count is refused");
    assert_eq!(refused.code(), "VALIDATION_FAILED");
    let message = refused.to_string();
    assert!(
        message.contains('8') && message.contains('4'),
        "names both: {message}"
    );
    assert_eq!(
        cluster_settings(&w.kv).expect("read"),
        Some(ClusterSettings { shard_count: 8 })
    );
    assert_eq!(code(init(&mut World::meta(), 0)), "VALIDATION_FAILED");
    assert_eq!(
        code(
            World::shard()
                .run(Op::InitCluster { shard_count: 8 })
                .result
        ),
        "WRONG_GROUP"
    );
}
