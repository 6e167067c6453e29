//! List with label selectors, field selectors and limit/continue.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};

use crate::common::*;

async fn names(api: &Api<ConfigMap>, lp: &ListParams) -> Vec<String> {
    let mut v: Vec<String> = api
        .list(lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn label_selectors_support_every_operator() {
    let env = env("sel-labels").await;
    create_cm(
        &env,
        "a",
        &[("app", "web"), ("tier", "front"), ("sel", "t")],
    )
    .await;
    create_cm(&env, "b", &[("app", "web"), ("tier", "back"), ("sel", "t")]).await;
    create_cm(&env, "c", &[("app", "db"), ("sel", "t")]).await;
    create_cm(&env, "d", &[("sel", "t")]).await;
    let api = env.api::<ConfigMap>();
    let q = |s: &str| ListParams::default().labels(&format!("sel=t,{s}"));
    assert_eq!(names(&api, &q("app=web")).await, ["a", "b"]);
    assert_eq!(names(&api, &q("app==db")).await, ["c"]);
    assert_eq!(
        names(&api, &q("app!=web")).await,
        ["c", "d"],
        "!= includes objects without the label"
    );
    assert_eq!(names(&api, &q("tier in (front,back)")).await, ["a", "b"]);
    assert_eq!(names(&api, &q("tier notin (front)")).await, ["b", "c", "d"]);
    assert_eq!(names(&api, &q("tier")).await, ["a", "b"]);
    assert_eq!(names(&api, &q("!tier")).await, ["c", "d"]);
    assert_eq!(names(&api, &q("app=web,tier=back")).await, ["b"]);
    assert_api_error(
        api.list(&ListParams::default().labels("a in (b")).await,
        400,
        "BadRequest",
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn field_selectors_on_name_and_namespace() {
    let env = env("sel-fields").await;
    create_cm(&env, "one", &[]).await;
    create_cm(&env, "two", &[]).await;
    let api = env.api::<ConfigMap>();
    assert_eq!(
        names(&api, &ListParams::default().fields("metadata.name=one")).await,
        ["one"]
    );
    let not_one = names(&api, &ListParams::default().fields("metadata.name!=one")).await;
    assert!(not_one.contains(&"two".to_string()) && !not_one.contains(&"one".to_string()));
    let all: Api<ConfigMap> = Api::all(env.client());
    let in_ns = all
        .list(&ListParams::default().fields(&format!("metadata.namespace={}", env.namespace())))
        .await
        .unwrap();
    assert!(
        in_ns
            .items
            .iter()
            .all(|c| c.metadata.namespace.as_deref() == Some(env.namespace()))
    );
    assert!(in_ns.items.len() >= 2);
    let s = api_error(api.list(&ListParams::default().fields("data.k=v")).await);
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"), "{s:?}");
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn limit_and_continue_page_through_everything() {
    let env = env("sel-pages").await;
    for i in 0..7 {
        create_cm(&env, &format!("p{i}"), &[("page", "yes")]).await;
    }
    let api = env.api::<ConfigMap>();
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().labels("page=yes").limit(3);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.unwrap();
        assert!(page.items.len() <= 3);
        pages += 1;
        seen.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    assert_eq!(seen, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());
    // Without selectors the first page says how many remain.
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let remaining = first.metadata.remaining_item_count.unwrap_or(-1);
    assert!(remaining >= 5, "remainingItemCount {remaining}");
    env.cleanup().await.unwrap();
}
