//! The backends without a server: a static list, DNS (`localhost`, resolved by the system), none.

use std::time::Duration;

use natter_discovery::{Discovery, DiscoveryConfig, DnsConfig, Node, StaticConfig, StaticNode};

fn this_node() -> Node {
    Node { id: "self".into(), roles: vec!["gateway".into()], grpc_addr: "127.0.0.1:1".into(), http_addr: None }
}

#[tokio::test]
async fn a_static_list_is_the_configured_nodes() {
    let config = DiscoveryConfig::Static(StaticConfig {
        nodes: vec![
            StaticNode { id: None, grpc_addr: "10.0.0.2:50051".into(), http_addr: None, roles: vec!["chat".into()] },
            StaticNode {
                id: Some("w".into()),
                grpc_addr: "10.0.0.3:50051".into(),
                http_addr: Some("10.0.0.3:8080".into()),
                roles: vec!["worker".into()],
            },
        ],
    });
    let discovery = Discovery::start(&config, this_node()).await.expect("start");
    let nodes = discovery.nodes().borrow().clone();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].id, "10.0.0.2:50051", "the id defaults to the address");
    assert_eq!(nodes[1].http_addr.as_deref(), Some("10.0.0.3:8080"));
    assert_eq!(discovery.nodes_with_role("worker")[0].id, "w");
    assert!(discovery.registration().is_none());
    // The list never changes, and waiting for a change waits (it does not fail at once).
    let mut receiver = discovery.nodes();
    assert!(tokio::time::timeout(Duration::from_millis(100), receiver.changed()).await.is_err());
    discovery.stop().await;
}

#[tokio::test]
async fn dns_lists_every_address_of_the_name() {
    let config = DiscoveryConfig::Dns(DnsConfig {
        name: "localhost".into(),
        port: 50051,
        roles: vec!["chat".into()],
        refresh_secs: 1,
    });
    let expected: Vec<String> = {
        let mut all: Vec<String> = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 50051))
            .expect("resolve")
            .map(|a| a.to_string())
            .collect();
        all.sort();
        all.dedup();
        all
    };
    let discovery = Discovery::start(&config, this_node()).await.expect("start");
    let nodes = discovery.nodes_with_role("chat");
    let addresses: Vec<String> = nodes.iter().map(|n| n.grpc_addr.clone()).collect();
    println!("localhost resolves to {addresses:?}");
    assert!(addresses.contains(&"127.0.0.1:50051".to_string()), "{addresses:?}");
    assert_eq!(addresses, expected);
    assert!(nodes.iter().all(|n| n.id == n.grpc_addr && n.http_addr.is_none()));
    discovery.stop().await;
}

#[tokio::test]
async fn dns_keeps_the_list_when_the_name_does_not_resolve() {
    let config = DiscoveryConfig::Dns(DnsConfig {
        name: "no-such-host.invalid".into(),
        port: 50051,
        roles: vec!["chat".into()],
        refresh_secs: 1,
    });
    let discovery = Discovery::start(&config, this_node()).await.expect("an unresolvable name is retried, not fatal");
    assert!(discovery.nodes().borrow().is_empty());
    discovery.stop().await;
}

#[tokio::test]
async fn none_knows_only_this_node() {
    let discovery = Discovery::start(&DiscoveryConfig::None, this_node()).await.expect("start");
    assert_eq!(*discovery.nodes().borrow(), [this_node()]);
}

#[tokio::test]
async fn etcd_refuses_a_node_id_that_is_not_one_key_segment() {
    let config = DiscoveryConfig::Etcd(natter_discovery::EtcdConfig::default());
    for id in ["", "a/b"] {
        let node = Node { id: id.into(), ..this_node() };
        let refused = Discovery::start(&config, node).await;
        assert!(matches!(refused, Err(natter_discovery::DiscoveryError::Config(_))), "{id:?}: {refused:?}");
    }
}
