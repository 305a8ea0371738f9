use super::*;

fn broker(image: &mut MetadataImage, index: u64, id: i32, rack: Option<&str>) {
    let cmd = Command::RegisterBroker {
        broker_id: id,
        incarnation: Uuid::from_u128(id as u128 + 1),
        host: "127.0.0.1".into(),
        port: 9092,
        rack: rack.map(str::to_owned),
        listeners: Vec::new(),
    };
    let epoch = match image.apply(index, &cmd) {
        Ok(CommandResult::BrokerRegistered { broker_epoch }) => broker_epoch,
        other => panic!("register {id}: {other:?}"),
    };
    assert_eq!(
        image.apply(index + 1, &Command::UnfenceBroker { broker_id: id, epoch }),
        Ok(CommandResult::Done)
    );
}

fn create(image: &mut MetadataImage, name: &str, partitions: i32, rf: i16) -> CommandReply {
    let cmd = Command::CreateTopic {
        name: name.into(),
        topic_id: Uuid::from_u128(0xabc0 + image.topics.len() as u128),
        partitions,
        replication_factor: rf,
        configs: BTreeMap::new(),
    };
    image.apply(image.applied_index + 1, &cmd)
}

#[test]
fn placement_spreads_leaders_and_racks() {
    let mut image = MetadataImage::default();
    for (i, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")] {
        broker(&mut image, i as u64 * 2, i, Some(rack));
    }
    let Ok(CommandResult::TopicCreated { partitions, .. }) = create(&mut image, "t", 12, 3) else {
        panic!("created")
    };
    let mut leaders = BTreeMap::new();
    for p in &partitions {
        *leaders.entry(p.leader).or_insert(0) += 1;
        let racks: BTreeSet<_> = p.replicas.iter().map(|r| image.brokers[r].rack.clone()).collect();
        assert_eq!(racks.len(), 3, "replicas {:?} on distinct racks", p.replicas);
        assert_eq!(p.isr, p.replicas, "every replica of a new partition is in sync");
        assert_eq!(p.leader, p.replicas[0]);
    }
    assert_eq!(leaders.len(), 6);
    assert!(leaders.values().all(|n| *n == 2), "leaders {leaders:?}");
}

#[test]
fn refused_commands_change_nothing() {
    let mut image = MetadataImage::default();
    broker(&mut image, 1, 1, None);
    create(&mut image, "t", 2, 1).expect("created");
    let before = image.clone();
    type Expect = fn(&CommandError) -> bool;
    let cases: Vec<(Command, Expect)> = vec![
        (
            Command::RegisterBroker {
                broker_id: 1,
                incarnation: Uuid::from_u128(99),
                host: "h".into(),
                port: 1,
                rack: None,
                listeners: Vec::new(),
            },
            |e| matches!(e, CommandError::DuplicateBrokerId { broker_id: 1, .. }),
        ),
        (Command::UnregisterBroker { broker_id: 1 }, |e| {
            matches!(e, CommandError::BrokerNotFenced { .. })
        }),
        (Command::UnfenceBroker { broker_id: 1, epoch: 77 }, |e| {
            matches!(e, CommandError::StaleBrokerEpoch { .. })
        }),
        (Command::FenceBroker { broker_id: 9 }, |e| {
            matches!(e, CommandError::UnknownBroker { broker_id: 9 })
        }),
        (Command::DeleteTopic { name: "x".into() }, |e| {
            matches!(e, CommandError::UnknownTopic { .. })
        }),
        (Command::CreatePartitions { name: "t".into(), total: 2 }, |e| {
            matches!(e, CommandError::InvalidPartitions { .. })
        }),
        (
            Command::CreateTopic {
                name: "t".into(),
                topic_id: Uuid::from_u128(5),
                partitions: 1,
                replication_factor: 1,
                configs: BTreeMap::new(),
            },
            |e| matches!(e, CommandError::TopicExists { .. }),
        ),
        (
            Command::CreateTopic {
                name: "u".into(),
                topic_id: Uuid::from_u128(5),
                partitions: 1,
                replication_factor: 2,
                configs: BTreeMap::new(),
            },
            |e| matches!(e, CommandError::InvalidReplicationFactor { requested: 2, available: 1 }),
        ),
        (
            Command::CreateTopic {
                name: "bad/name".into(),
                topic_id: Uuid::from_u128(5),
                partitions: 1,
                replication_factor: 1,
                configs: BTreeMap::new(),
            },
            |e| matches!(e, CommandError::InvalidTopicName { .. }),
        ),
        (Command::AllocateProducerIdBlock { broker_id: 1, size: 0 }, |e| {
            matches!(e, CommandError::InvalidBlockSize { size: 0 })
        }),
    ];
    for (cmd, want) in cases {
        let err = image.apply(image.applied_index, &cmd).expect_err("refused");
        assert!(want(&err), "{cmd:?} gave {err:?}");
        assert_eq!(image, before, "{cmd:?} changed the image");
    }
}

#[test]
fn fencing_moves_leadership_and_unfencing_restores_it() {
    let mut image = MetadataImage::default();
    broker(&mut image, 1, 1, None);
    broker(&mut image, 3, 2, None);
    create(&mut image, "t", 2, 2).expect("created");
    let leader0 = image.topics["t"].partitions[0].leader;
    image.apply(10, &Command::FenceBroker { broker_id: leader0 }).expect("fenced");
    let p = &image.topics["t"].partitions[0];
    assert_ne!(p.leader, leader0);
    assert!(!p.isr.contains(&leader0));
    assert_eq!((p.leader_epoch, p.partition_epoch), (1, 1));
    // The last one standing: no leader, and it stays eligible (ELR, KIP-966).
    let other = p.leader;
    image.apply(11, &Command::FenceBroker { broker_id: other }).expect("fenced");
    let p = &image.topics["t"].partitions[0];
    assert_eq!(p.leader, -1);
    assert!(p.isr.is_empty());
    assert_eq!(p.elr, vec![other]);
    let epoch = image.brokers[&other].epoch;
    image.apply(12, &Command::UnfenceBroker { broker_id: other, epoch }).expect("unfenced");
    assert_eq!(image.topics["t"].partitions[0].leader, other);
}

#[test]
fn producer_id_blocks_never_overlap_and_lost_disk_procedure() {
    let mut image = MetadataImage::default();
    broker(&mut image, 1, 1, None);
    let mut next = 0;
    for i in 0..5 {
        let Ok(CommandResult::ProducerIdBlock { first, size }) =
            image.apply(10 + i, &Command::AllocateProducerIdBlock { broker_id: 1, size: 1000 })
        else {
            panic!("block")
        };
        assert_eq!((first, size), (next, 1000));
        next += 1000;
    }
    // A replacement broker under id 1: fence, unregister, register with the new identity.
    image.apply(20, &Command::FenceBroker { broker_id: 1 }).expect("fenced");
    image.apply(21, &Command::UnregisterBroker { broker_id: 1 }).expect("unregistered");
    let cmd = Command::RegisterBroker {
        broker_id: 1,
        incarnation: Uuid::from_u128(1234),
        host: "h".into(),
        port: 1,
        rack: None,
        listeners: Vec::new(),
    };
    assert_eq!(image.apply(22, &cmd), Ok(CommandResult::BrokerRegistered { broker_epoch: 22 }));
}

mod placement_model {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// For any set of racked brokers, partition count and feasible replication factor:
        /// replicas are distinct unfenced brokers, on distinct racks while racks suffice,
        /// leaders differ by at most one partition between brokers, and the ISR is all.
        #[test]
        fn placement_invariants(
            racks in proptest::collection::vec(0u8..4, 1..9),
            fenced in proptest::collection::vec(any::<bool>(), 9),
            partitions in 1i32..40,
            rf_seed in 0usize..100,
        ) {
            let mut image = MetadataImage::default();
            for (i, rack) in racks.iter().enumerate() {
                let id = i as i32 + 1;
                broker(&mut image, (i as u64 + 1) * 10, id, Some(&format!("r{rack}")));
                if fenced[i] {
                    image.apply((i as u64 + 1) * 10 + 5, &Command::FenceBroker { broker_id: id }).expect("fence");
                }
            }
            let live: Vec<BrokerRecord> = image.unfenced_brokers().cloned().collect();
            prop_assume!(!live.is_empty());
            let rack_count = live.iter().map(|b| b.rack.clone()).collect::<BTreeSet<_>>().len();
            let rf = (rf_seed % live.len()) as i16 + 1;
            let Ok(CommandResult::TopicCreated { partitions: placed, .. }) = create(&mut image, "t", partitions, rf) else {
                panic!("placement failed");
            };
            let mut leaders: BTreeMap<i32, usize> = live.iter().map(|b| (b.id, 0)).collect();
            for p in &placed {
                let distinct: BTreeSet<i32> = p.replicas.iter().copied().collect();
                prop_assert_eq!(distinct.len(), rf as usize);
                prop_assert!(p.replicas.iter().all(|r| !image.brokers[r].fenced));
                let racks_used: BTreeSet<_> = p.replicas.iter().map(|r| image.brokers[r].rack.clone()).collect();
                prop_assert_eq!(racks_used.len(), (rf as usize).min(rack_count));
                prop_assert_eq!(&p.isr, &p.replicas);
                *leaders.get_mut(&p.leader).expect("leader is live") += 1;
            }
            let (lo, hi) = (leaders.values().min().copied(), leaders.values().max().copied());
            prop_assert!(hi.unwrap_or(0) - lo.unwrap_or(0) <= 1, "leaders {:?}", leaders);
        }
    }
}

#[test]
fn a_barrier_changes_nothing_and_names_its_index() {
    let mut image = MetadataImage::default();
    broker(&mut image, 1, 1, None);
    let before = image.clone();
    assert_eq!(image.apply(7, &Command::Barrier), Ok(CommandResult::Barrier { index: 7 }));
    assert_eq!(MetadataImage { applied_index: before.applied_index, ..image.clone() }, before);
    assert_eq!(image.applied_index, 7);
    let advance = Command::AdvanceProducerIds { at_least: 5000 };
    assert_eq!(image.apply(8, &advance), Ok(CommandResult::Done));
    assert_eq!(image.next_producer_id, 5000);
    let back = Command::AdvanceProducerIds { at_least: 10 };
    assert_eq!(image.apply(9, &back), Ok(CommandResult::Done));
    assert_eq!(image.next_producer_id, 5000, "never back");
}

fn alter(image: &mut MetadataImage, index: u64, p: usize, isr: Vec<i32>) -> CommandReply {
    let t = &image.topics["t"];
    let rec = &t.partitions[p];
    let leader = rec.leader;
    let command = Command::AlterPartition {
        broker_id: leader,
        broker_epoch: image.brokers[&leader].epoch,
        topic_id: t.id,
        partition: p as i32,
        leader_epoch: rec.leader_epoch,
        partition_epoch: rec.partition_epoch,
        isr,
    };
    image.apply(index, &command)
}

#[test]
fn alter_partition_checks_leader_and_epochs_and_keeps_eligible_replicas() {
    let mut image = MetadataImage::default();
    for (i, id) in [1, 2, 3].into_iter().enumerate() {
        broker(&mut image, i as u64 + 1, id, None);
    }
    let mut configs = BTreeMap::new();
    configs.insert("min.insync.replicas".to_owned(), "2".to_owned());
    let command = Command::CreateTopic {
        name: "t".into(),
        topic_id: Uuid::from_u128(7),
        partitions: 1,
        replication_factor: 3,
        configs,
    };
    image.apply(5, &command).expect("created");
    let p0 = image.topics["t"].partitions[0].clone();
    let (leader, f1, f2) = (p0.replicas[0], p0.replicas[1], p0.replicas[2]);
    // A stale partition epoch is refused and changes nothing.
    let before = image.clone();
    let mut stale = Command::AlterPartition {
        broker_id: leader,
        broker_epoch: image.brokers[&leader].epoch,
        topic_id: Uuid::from_u128(7),
        partition: 0,
        leader_epoch: 0,
        partition_epoch: 5,
        isr: vec![leader],
    };
    assert!(matches!(image.apply(6, &stale), Err(CommandError::InvalidUpdateVersion { .. })));
    if let Command::AlterPartition { broker_id, .. } = &mut stale {
        *broker_id = f1;
    }
    assert!(matches!(
        image.apply(6, &stale),
        Err(CommandError::StaleBrokerEpoch { .. } | CommandError::NotLeader { .. })
    ));
    image.applied_index = before.applied_index;
    assert_eq!(image, before);
    // Shrinking to 2 (= min ISR): no ELR. Shrinking to 1: the removed one stays eligible.
    alter(&mut image, 7, 0, vec![leader, f1]).expect("shrunk");
    assert!(image.topics["t"].partitions[0].elr.is_empty());
    alter(&mut image, 8, 0, vec![leader]).expect("shrunk");
    assert_eq!(image.topics["t"].partitions[0].elr, vec![f1]);
    assert_eq!(image.topics["t"].partitions[0].partition_epoch, 2);
    // The leader dies: f1 (eligible) leads, f2 (out of sync) does not.
    image.apply(9, &Command::FenceBroker { broker_id: leader }).expect("fenced");
    let p = &image.topics["t"].partitions[0];
    assert_eq!(p.leader, f1);
    assert_eq!(p.isr, vec![f1]);
    assert_eq!(p.leader_epoch, 1);
    // A fenced replica cannot be added; a live one can, and the ISR reaching min clears the ELR.
    assert!(matches!(
        alter(&mut image, 10, 0, vec![f1, leader]),
        Err(CommandError::IneligibleReplica { .. })
    ));
    alter(&mut image, 11, 0, vec![f1, f2]).expect("expanded");
    let p = &image.topics["t"].partitions[0];
    assert_eq!(p.isr.len(), 2);
    assert!(p.elr.is_empty());
}

#[test]
fn preferred_and_unclean_elections() {
    let mut image = MetadataImage::default();
    broker(&mut image, 1, 1, None);
    broker(&mut image, 2, 2, None);
    create(&mut image, "t", 1, 2).expect("created");
    let preferred = image.topics["t"].partitions[0].replicas[0];
    let other = image.topics["t"].partitions[0].replicas[1];
    let elect = |kind| Command::ElectLeader { topic: "t".into(), partition: 0, kind };
    assert_eq!(
        image.apply(5, &elect(ElectionKind::Preferred)),
        Err(CommandError::ElectionNotNeeded)
    );
    image.apply(6, &Command::FenceBroker { broker_id: preferred }).expect("fenced");
    assert_eq!(image.topics["t"].partitions[0].leader, other);
    let epoch = image.brokers[&preferred].epoch;
    image.apply(7, &Command::UnfenceBroker { broker_id: preferred, epoch }).expect("unfenced");
    // Back, but not in sync yet: not electable.
    assert!(matches!(
        image.apply(8, &elect(ElectionKind::Preferred)),
        Err(CommandError::PreferredLeaderNotAvailable { .. })
    ));
    alter(&mut image, 9, 0, vec![other, preferred]).expect("caught up");
    image.apply(10, &elect(ElectionKind::Preferred)).expect("elected");
    let p = &image.topics["t"].partitions[0];
    assert_eq!((p.leader, p.leader_epoch), (preferred, 2));
    // Unclean: only when nobody eligible is live.
    assert_eq!(
        image.apply(11, &elect(ElectionKind::Unclean)),
        Err(CommandError::ElectionNotNeeded)
    );
}

#[test]
fn reassignment_adds_then_drops_replicas() {
    let mut image = MetadataImage::default();
    for (i, id) in [1, 2, 3].into_iter().enumerate() {
        broker(&mut image, i as u64 + 1, id, None);
    }
    create(&mut image, "t", 1, 1).expect("created");
    let old = image.topics["t"].partitions[0].leader;
    let new = if old == 3 { 2 } else { 3 };
    let reassign = |target| Command::Reassign { topic: "t".into(), partition: 0, target };
    assert!(matches!(
        image.apply(5, &reassign(Some(vec![new, new]))),
        Err(CommandError::InvalidReplicaAssignment { .. })
    ));
    assert!(matches!(
        image.apply(5, &reassign(Some(vec![9]))),
        Err(CommandError::InvalidReplicaAssignment { .. })
    ));
    image.apply(6, &reassign(Some(vec![new]))).expect("started");
    let p = &image.topics["t"].partitions[0];
    assert_eq!(
        (p.replicas.clone(), p.adding.clone(), p.removing.clone()),
        (vec![new, old], vec![new], vec![old])
    );
    assert_eq!(p.leader, old);
    // The new replica caught up: the old one goes, leadership moves.
    alter(&mut image, 7, 0, vec![old, new]).expect("in sync");
    let p = &image.topics["t"].partitions[0];
    assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![new], vec![new], new));
    assert!(p.adding.is_empty() && p.removing.is_empty());
    assert_eq!(p.leader_epoch, 1);
    // Cancelling: the added replica goes.
    image.apply(8, &reassign(Some(vec![old, new]))).expect("started");
    image.apply(9, &reassign(None)).expect("cancelled");
    assert_eq!(image.topics["t"].partitions[0].replicas, vec![new]);
    assert_eq!(image.apply(10, &reassign(None)), Err(CommandError::NoReassignment));
}
