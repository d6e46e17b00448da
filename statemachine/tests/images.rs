//! Scenario tests of an auction's images (DESIGN.md "Images"): only metadata is replicated,
//! only the seller changes it, before the first bid and the end, at most twelve, and a
//! cancelled auction keeps none.

mod common;

use auction_statemachine::command::{NewImage, Op};
use auction_statemachine::outcome::Outcome;
use auction_statemachine::{
    query, AuctionId, Image, ImageFile, ImageFormat, ImageId, Rejection, UserId,
};
use common::*;
use uuid::Uuid;

fn file(auction: AuctionId, name: &str, side: u32) -> ImageFile {
    ImageFile {
        key: format!("{auction}/{name}"),
        format: ImageFormat::Jpeg,
        size_bytes: 1_000,
        width: side,
        height: side,
    }
}

fn new_image(auction: AuctionId, n: u8) -> NewImage {
    NewImage {
        image_id: ImageId(Uuid::from_u128(0x1a4e_0000 + u128::from(n))),
        sha256: [n; 32],
        original: file(auction, &format!("{n}.jpg"), 800),
        thumbnail: file(auction, &format!("{n}.thumb.jpg"), 320),
    }
}

fn add(
    w: &mut World,
    auction: AuctionId,
    actor: UserId,
    image: NewImage,
) -> Result<Vec<Image>, Rejection> {
    let op = Op::AddImage {
        auction_id: auction,
        actor,
        image,
    };
    images_result(w.run(op).result)
}

fn images_result(result: Result<Outcome, Rejection>) -> Result<Vec<Image>, Rejection> {
    match result {
        Ok(Outcome::Images(images)) => Ok(images.images),
        Ok(other) => panic!("expected images, got {other:?}"),
        Err(rejection) => Err(rejection),
    }
}

fn stored(w: &World, auction: AuctionId) -> Vec<ImageId> {
    query::auction_images(&w.kv, auction)
        .expect("read")
        .iter()
        .map(|image| image.id)
        .collect()
}

#[test]
fn the_seller_adds_images_and_the_auction_keeps_them_in_order() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    let first = new_image(lot, 1);
    let second = new_image(lot, 2);
    add(&mut w, lot, SELLER, first.clone()).expect("added");
    let images = add(&mut w, lot, SELLER, second.clone()).expect("added");
    assert_eq!(images.len(), 2);
    assert_eq!(images[1].added_at, w.now, "stamped with the command's time");
    assert_eq!(stored(&w, lot), vec![first.image_id, second.image_id]);
}

#[test]
fn the_same_content_again_adds_no_copy() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    add(&mut w, lot, SELLER, new_image(lot, 1)).expect("added");
    let mut again = new_image(lot, 1);
    again.image_id = ImageId(Uuid::from_u128(0xbeef));
    let images = add(&mut w, lot, SELLER, again).expect("a retry answers");
    assert_eq!(images.len(), 1, "no second copy");
    assert_eq!(
        images[0].id,
        new_image(lot, 1).image_id,
        "the first image answers"
    );
}

#[test]
fn only_the_seller_changes_images_and_not_after_a_bid_or_the_end() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    assert_eq!(
        code(add(&mut w, lot, ALICE, new_image(lot, 1))),
        "FORBIDDEN"
    );
    add(&mut w, lot, SELLER, new_image(lot, 1)).expect("added");
    w.bid(lot, ALICE, "10").expect("bid");
    assert_eq!(
        code(add(&mut w, lot, SELLER, new_image(lot, 2))),
        "AUCTION_HAS_BIDS"
    );
    let remove = Op::RemoveImage {
        auction_id: lot,
        actor: SELLER,
        image_id: new_image(lot, 1).image_id,
    };
    assert_eq!(
        code(images_result(w.run(remove).result)),
        "AUCTION_HAS_BIDS"
    );

    let quiet = w.create(|_| {});
    w.advance(2 * HOUR);
    assert_eq!(
        code(add(&mut w, quiet, SELLER, new_image(quiet, 3))),
        "AUCTION_ENDED"
    );
    let unknown = AuctionId(Uuid::from_u128(0xdead));
    assert_eq!(
        code(add(&mut w, unknown, SELLER, new_image(unknown, 4))),
        "AUCTION_NOT_FOUND"
    );
}

#[test]
fn an_auction_has_at_most_twelve_images() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    for n in 0..12 {
        add(&mut w, lot, SELLER, new_image(lot, n)).expect("within the limit");
    }
    let refused = add(&mut w, lot, SELLER, new_image(lot, 12));
    assert!(
        matches!(&refused, Err(Rejection::Validation { field, .. }) if field == "images"),
        "{refused:?}"
    );
    assert_eq!(stored(&w, lot).len(), 12);
}

#[test]
fn object_keys_must_belong_to_the_auction_and_sizes_be_bounded() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    let other = w.create(|_| {});
    let mut foreign = new_image(lot, 1);
    foreign.original.key = format!("{other}/1.jpg");
    let mut escaping = new_image(lot, 2);
    escaping.thumbnail.key = format!("{lot}/../{other}/x.jpg");
    let mut huge_thumbnail = new_image(lot, 3);
    huge_thumbnail.thumbnail.width = 321;
    let mut empty = new_image(lot, 4);
    empty.original.size_bytes = 0;
    let mut shared = new_image(lot, 5);
    shared.thumbnail.key = shared.original.key.clone();
    for (image, field) in [
        (foreign, "image"),
        (escaping, "thumbnail"),
        (huge_thumbnail, "thumbnail"),
        (empty, "image"),
        (shared, "thumbnail"),
    ] {
        let refused = add(&mut w, lot, SELLER, image);
        assert!(
            matches!(&refused, Err(Rejection::Validation { field: got, .. }) if got == field),
            "{refused:?} should name {field}"
        );
    }
    assert!(stored(&w, lot).is_empty(), "nothing refused was recorded");
}

#[test]
fn removing_and_ordering_images() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    let ids: Vec<ImageId> = (1..=3)
        .map(|n| {
            let image = new_image(lot, n);
            add(&mut w, lot, SELLER, image.clone()).expect("added");
            image.image_id
        })
        .collect();
    let order = |w: &mut World, order: Vec<ImageId>| {
        images_result(
            w.run(Op::OrderImages {
                auction_id: lot,
                actor: SELLER,
                order,
            })
            .result,
        )
    };
    order(&mut w, vec![ids[2], ids[0], ids[1]]).expect("a permutation");
    assert_eq!(stored(&w, lot), vec![ids[2], ids[0], ids[1]]);
    assert_eq!(
        code(order(&mut w, vec![ids[0], ids[1]])),
        "VALIDATION_FAILED",
        "one missing"
    );
    assert_eq!(
        code(order(&mut w, vec![ids[0], ids[0], ids[1]])),
        "VALIDATION_FAILED",
        "one twice"
    );
    assert_eq!(
        code(order(
            &mut w,
            vec![ids[0], ids[1], ImageId(Uuid::from_u128(9))]
        )),
        "VALIDATION_FAILED",
        "one unknown"
    );
    let remove = |w: &mut World, image_id| {
        images_result(
            w.run(Op::RemoveImage {
                auction_id: lot,
                actor: SELLER,
                image_id,
            })
            .result,
        )
    };
    remove(&mut w, ids[0]).expect("removed");
    assert_eq!(stored(&w, lot), vec![ids[2], ids[1]]);
    assert_eq!(code(remove(&mut w, ids[0])), "IMAGE_NOT_FOUND");
    assert_eq!(
        code(remove(&mut w, ImageId(Uuid::from_u128(9)))),
        "IMAGE_NOT_FOUND"
    );
}

#[test]
fn a_cancelled_auction_keeps_no_images() {
    let mut w = World::shard();
    let lot = w.create(|_| {});
    add(&mut w, lot, SELLER, new_image(lot, 1)).expect("added");
    let cancel = Op::CancelAuction {
        auction_id: lot,
        actor: SELLER,
    };
    assert!(w.run(cancel).result.is_ok());
    assert!(
        stored(&w, lot).is_empty(),
        "the sweep may now delete the objects"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Add(u8),
        Remove(u8),
        Order(Vec<u8>),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (0u8..16).prop_map(Step::Add),
            1 => (0u8..16).prop_map(Step::Remove),
            1 => proptest::collection::vec(0u8..16, 0..14).prop_map(Step::Order),
        ]
    }

    fn id(n: u8) -> ImageId {
        new_image(AuctionId(Uuid::nil()), n).image_id
    }

    proptest! {
        /// Whatever the seller does, an auction holds at most twelve images, each once, each
        /// with its own keys under the auction's prefix, and a refused step changes nothing.
        #[test]
        fn images_stay_bounded_distinct_and_the_auctions_own(
            steps in proptest::collection::vec(step(), 1..60)
        ) {
            let mut w = World::shard();
            let lot = w.create(|_| {});
            for step in steps {
                let before = stored(&w, lot);
                let op = match &step {
                    Step::Add(n) => Op::AddImage { auction_id: lot, actor: SELLER, image: new_image(lot, *n) },
                    Step::Remove(n) => Op::RemoveImage { auction_id: lot, actor: SELLER, image_id: id(*n) },
                    Step::Order(order) => Op::OrderImages {
                        auction_id: lot,
                        actor: SELLER,
                        order: order.iter().map(|n| id(*n)).collect(),
                    },
                };
                let result = w.run(op).result;
                let after = stored(&w, lot);
                if result.is_err() {
                    prop_assert_eq!(&before, &after, "a refused {:?} changed the images", step);
                }
                prop_assert!(after.len() <= 12);
                let mut distinct = after.clone();
                distinct.sort();
                distinct.dedup();
                prop_assert_eq!(distinct.len(), after.len());
                let prefix = format!("{lot}/");
                for image in query::auction_images(&w.kv, lot).expect("read") {
                    prop_assert!(image.original.key.starts_with(&prefix));
                    prop_assert!(image.thumbnail.key.starts_with(&prefix));
                }
                if let (Step::Order(order), Ok(_)) = (&step, &result) {
                    let wanted: Vec<ImageId> = order.iter().map(|n| id(*n)).collect();
                    prop_assert_eq!(&after, &wanted, "an accepted order is the order kept");
                }
            }
        }
    }
}
