mod common;
use common::*;
use odradek_storage::compression::Codec;
use odradek_storage::{CompioBackend, Log, LogConfig};

#[test]
fn append_read_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    rt.block_on(async {
        let cfg =
            LogConfig { segment_bytes: 4096, index_interval_bytes: 256, ..LogConfig::default() };
        let log = Log::open(CompioBackend, dir.path(), cfg.clone()).await.expect("open");
        let mut expected = Vec::new();
        for i in 0..200u64 {
            let info = log
                .append(batch_of(&[i * 2, i * 2 + 1], Codec::None, 1000 + i as i64, false))
                .await
                .expect("append");
            assert_eq!(info.base_offset, i * 2);
            expected.push((i * 2, i * 2));
            expected.push((i * 2 + 1, i * 2 + 1));
        }
        log.sync().await.expect("sync");
        assert!(log.segment_count() > 3, "segments rolled: {}", log.segment_count());
        let mut got = Vec::new();
        let mut off = 0;
        while off < log.log_end_offset() {
            let b = log.read_bytes(off, 1000).await.expect("read");
            let v = values_in(&b);
            off = v.last().expect("progress").0 + 1;
            got.extend(v);
        }
        assert_eq!(got, expected);
        log.close().await.expect("close");
        let log = Log::open(CompioBackend, dir.path(), cfg).await.expect("reopen");
        assert_eq!(log.log_end_offset(), 400);
        let b = log.read_bytes(123, 1).await.expect("read");
        assert_eq!(values_in(&b)[0].0, 122);
        assert_eq!(
            log.offset_for_timestamp(1050).await.expect("ts"),
            Some((99, 1050)),
            "batch 49 holds timestamps 1049 and 1050"
        );
    });
}
