//! The harness's object store ([`common::S3Server`], the real `s3s-fs` that the image tests
//! run): it answers HTTP on its port (an unsigned request gets an S3 error), stops (nothing
//! answers, the objects stay) and starts again on the same port and directory.

mod common;

use common::{http_status_line, S3Server};

#[test]
fn s3s_fs_answers_stops_and_starts_again_on_the_same_port_and_directory() {
    let s3 = S3Server::new();
    assert_eq!(s3.endpoint(), format!("http://127.0.0.1:{}", s3.port()));
    let args = s3.node_args();
    assert_eq!(args[0], "--s3-endpoint");
    assert_eq!(args[1], s3.endpoint());
    assert!(args.contains(&s3.access_key) && args.contains(&s3.secret_key));

    let answer = http_status_line(s3.port()).expect("s3s-fs answers");
    // Authentication is on: an unsigned request is refused, not served.
    assert!(answer.contains(" 403 "), "unexpected answer: {answer}");

    // A bucket is a directory of the store's root: it must survive the restart.
    let bucket = s3.root().join("kept-bucket");
    std::fs::create_dir(&bucket).expect("bucket directory");
    std::fs::write(bucket.join("object"), b"bytes").expect("object file");

    s3.stop();
    assert_eq!(http_status_line(s3.port()), None, "stopped, yet answering");
    s3.stop();

    s3.start();
    let answer = http_status_line(s3.port()).expect("s3s-fs answers again");
    assert!(answer.contains(" 403 "), "unexpected answer: {answer}");
    assert_eq!(
        std::fs::read(bucket.join("object")).expect("object kept"),
        b"bytes"
    );
    s3.start();
}
