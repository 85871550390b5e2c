//! `/api/results` pages and filters, `/api/results/{id}` and the history
//! buckets, in-process through `warp::test` over the stock fixture.

use serde_json::Value;
use warp::test::request;

use crate::common::*;

async fn get(env: &Env, path: &str) -> (u16, Value) {
    let res = request().path(path).reply(&env.routes()).await;
    let body = serde_json::from_slice(res.body())
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {:?}", res.body()));
    (res.status().as_u16(), body)
}

async fn list(env: &Env, path: &str) -> Vec<Value> {
    let (status, body) = get(env, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body.as_array().expect("an array").clone()
}

fn ids(results: &[Value]) -> Vec<&str> {
    results.iter().map(|r| r["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn limit_and_before_page_back_through_the_history() {
    let env = Env::stock();
    let all = list(&env, "/api/results").await;
    assert_eq!(all.len(), 5);
    let all_ids = ids(&all);
    assert!(all_ids.iter().all(|id| id.starts_with("5201-")));
    let last_two = list(&env, "/api/results?limit=2").await;
    assert_eq!(ids(&last_two), all_ids[3..]);
    let page = format!("/api/results?limit=2&before={}", all_ids[3]);
    assert_eq!(ids(&list(&env, &page).await), all_ids[1..3]);
    let page = format!("/api/results?limit=2&before={}", all_ids[1]);
    assert_eq!(ids(&list(&env, &page).await), all_ids[..1]);
    let page = format!("/api/results?limit=2&before={}", all_ids[0]);
    assert!(list(&env, &page).await.is_empty());
    assert_eq!(list(&env, "/api/results?limit=100").await, all);
    // Pages of a filtered history.
    let alice = list(&env, "/api/results?name=alice&limit=1").await;
    assert_eq!(ids(&alice), [all_ids[4]]);
    let older = format!("/api/results?name=alice&limit=1&before={}", all_ids[4]);
    assert_eq!(ids(&list(&env, &older).await), [all_ids[0]]);
}

#[tokio::test]
async fn every_filter_combines() {
    let env = Env::stock();
    let all = list(&env, "/api/results").await;
    let t = |i: usize| all[i]["timestamp"].as_i64().unwrap();
    let matching = |f: &dyn Fn(&Value) -> bool| -> Vec<Value> {
        all.iter().filter(|r| f(r)).cloned().collect()
    };
    let cases: Vec<(String, Vec<Value>)> = vec![
        ("port=5201".into(), all.clone()),
        ("port=5202".into(), vec![]),
        ("name=carol".into(), matching(&|r| r["name"] == "carol")),
        (format!("until={}", t(1)), all[..2].to_vec()),
        (format!("since={}&until={}", t(1), t(3)), all[1..4].to_vec()),
        ("protocol=udp".into(), matching(&|r| r["protocol"] == "UDP")),
        ("protocol=TCP".into(), matching(&|r| r["protocol"] == "TCP")),
        ("protocol=ndt7".into(), vec![]),
        (
            "family=6".into(),
            matching(&|r| r["client"].as_str().is_some_and(|c| c.contains(':'))),
        ),
        (
            "family=4".into(),
            matching(&|r| r["client"].as_str().is_some_and(|c| !c.contains(':'))),
        ),
        (
            "name=alice&protocol=tcp&family=4&limit=1".into(),
            matching(&|r| r["name"] == "alice").split_off(1),
        ),
    ];
    for (query, want) in cases {
        let got = list(&env, &format!("/api/results?{query}")).await;
        assert_eq!(got, want, "{query}");
    }
}

#[tokio::test]
async fn bad_queries_are_400_with_a_json_error() {
    let env = Env::stock();
    for query in [
        "limit=0",
        "limit=10001",
        "limit=x",
        "before=5201-1-2",
        "limit=5&before=5201-1-2",
        "limit=5&before=nonsense",
        "until=nan",
        "protocol=sctp",
        "family=5",
        "family=x",
        "port=0x",
        "buckets=3",
        "unknown=1",
    ] {
        let (status, body) = get(&env, &format!("/api/results?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{query}"
        );
    }
    for query in ["buckets=0", "buckets=2001", "limit=3", "protocol=x"] {
        let (status, body) = get(&env, &format!("/api/history/buckets?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
}

#[tokio::test]
async fn the_detail_of_a_test_and_unknown_ids() {
    let env = Env::stock();
    let all = list(&env, "/api/results").await;
    let log = std::fs::read_to_string(env.log_path(P1)).unwrap();
    for result in &all {
        let id = result["id"].as_str().unwrap();
        let res = request()
            .path(&format!("/api/results/{id}"))
            .reply(&env.routes())
            .await;
        assert_eq!(res.status(), 200);
        let body = String::from_utf8(res.body().to_vec()).unwrap();
        let detail: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(&detail["result"], result);
        let offset: usize = id.rsplit_once('-').unwrap().1.parse().unwrap();
        let end = log[offset..].find("\n}\n").unwrap() + offset + 2;
        assert!(body.contains(&format!("\"entry\":{}", &log[offset..end])));
        let limited_by = detail["verdict"]["limited_by"].as_str().unwrap_or_default();
        assert!(
            crate::common::VERDICT_LIMITS.contains(&limited_by),
            "{limited_by:?}"
        );
    }
    for id in ["5201-1-0", "5202-1-0", "x", "5201-01-0", "ndt7-1-0"] {
        let (status, body) = get(&env, &format!("/api/results/{id}")).await;
        assert_eq!(status, 404, "{id}: {body}");
        assert!(body["error"].is_string(), "{id}: {body}");
    }
    // Ids are the same after a restart.
    let env = env.restart();
    assert_eq!(list(&env, "/api/results").await, all);
}

#[tokio::test]
async fn buckets_sum_the_history_up() {
    let env = Env::stock();
    let all = list(&env, "/api/results").await;
    let (status, body) = get(&env, "/api/history/buckets?buckets=1").await;
    assert_eq!(status, 200, "{body}");
    let buckets = body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 1);
    assert_eq!(buckets[0]["count"], 5);
    let uploads: Vec<f64> = all
        .iter()
        .filter_map(|r| r["receive_bps"].as_f64())
        .collect();
    let max = uploads.iter().copied().fold(0.0, f64::max);
    assert_eq!(buckets[0]["upload"]["max"].as_f64(), Some(max));
    assert!(buckets[0]["download"]["min"].is_number());
    let (_, body) = get(&env, "/api/history/buckets?name=alice").await;
    let counted: u64 = body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 2);
    let (_, body) = get(&env, "/api/history/buckets?protocol=ndt7").await;
    assert_eq!(body["buckets"], serde_json::json!([]));
}

#[tokio::test]
async fn a_name_is_exact_and_name_part_any_part_in_any_case() {
    let logs = STOCK.replace("\"carol\"", "\"alice-laptop\"");
    let env = Env::with_logs(&[P1], &[(P1, &logs)]);
    let names = |results: &[Value]| -> Vec<String> {
        results.iter().map(|r| r["name"].to_string()).collect()
    };
    let exact = list(&env, "/api/results?name=alice").await;
    assert_eq!(names(&exact), ["\"alice\"", "\"alice\""]);
    let parts = list(&env, "/api/results?name_part=ALI&limit=10").await;
    let mut got = names(&parts);
    got.sort();
    assert_eq!(got, ["\"alice\"", "\"alice\"", "\"alice-laptop\""]);
    let count = |body: &Value| -> u64 {
        let buckets = body["buckets"].as_array().unwrap();
        buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum()
    };
    let (_, body) = get(&env, "/api/history/buckets?name=alice").await;
    assert_eq!(count(&body), 2);
    let (_, body) = get(&env, "/api/history/buckets?name_part=ALI").await;
    assert_eq!(count(&body), 3);
}
