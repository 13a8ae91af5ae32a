//! A request's id and W3C trace context travel from the client through the gateway and gRPC
//! into the services: their log lines name them, and the events they record carry the trace
//! in their metadata. In the embedded platform, as three processes, and with
//! `METACHAT_TEST_WIRING=production`.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Platform, Wiring, default_wiring};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn the_clients_trace_reaches_the_services_logs_and_the_events() {
    trace_through(default_wiring().await).await;
}

#[tokio::test]
async fn the_trace_crosses_process_boundaries() {
    trace_through(Wiring::Separate).await;
}

/// Writes an entry with `headers`; the metadata of the event recorded.
async fn write_traced(app: &Platform, user: &str, headers: &[(&str, String)]) -> Value {
    let written = app
        .request_with(
            "POST",
            "/diary/entries",
            Some(json!({"userId": user, "title": "Traced", "content": "A traced day."})),
            headers,
        )
        .await;
    assert_eq!(written.status, StatusCode::CREATED, "{}", written.body);
    let history = app
        .get(&format!("/diary/entries/{}/history", written.id()))
        .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    history.body["events"][0]["metadata"].clone()
}

async fn trace_through(wiring: Wiring) {
    let mut app = Platform::start_wired(wiring).await;
    let user = app.create_user().await;
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    // The event the diary service recorded: the client's trace, under the service's span.
    let metadata = write_traced(
        &app,
        &user,
        &[
            ("traceparent", traceparent.clone()),
            ("x-request-id", "trace-test-1".to_owned()),
        ],
    )
    .await;
    assert_eq!(metadata["requestId"], "trace-test-1", "{metadata}");
    let recorded = metadata["traceparent"].as_str().unwrap_or_default();
    let parts: Vec<&str> = recorded.split('-').collect();
    assert_eq!(parts.len(), 4, "{metadata}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", TRACE_ID, "01"),
        "{metadata}"
    );
    let service_span = parts[2].to_owned();
    assert_ne!(
        service_span, CLIENT_SPAN,
        "the service records its own span"
    );
    let service_span = service_span.as_str();

    // A request with a malformed trace gets one of its own.
    let other = write_traced(&app, &user, &[("traceparent", "00-not-a-trace".to_owned())]).await;
    let other = other["traceparent"].as_str().unwrap_or_default();
    assert_eq!(other.len(), 55, "{other}");
    assert!(!other.contains(TRACE_ID) && !other.contains("not-a-trace"));

    // Two traceparent headers: neither is taken (W3C), a new trace starts.
    let third = write_traced(
        &app,
        &user,
        &[
            ("traceparent", traceparent.clone()),
            ("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-00")),
        ],
    )
    .await;
    let third = third["traceparent"].as_str().unwrap_or_default();
    assert_eq!(third.len(), 55, "{third}");
    assert!(!third.contains(TRACE_ID), "{third}");

    app.stop();
    let records: Vec<Value> = app
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of_request: Vec<&Value> = records
        .iter()
        .filter(|r| r["fields"]["trace_id"] == TRACE_ID)
        .collect();
    // The gateway's access line: the request id and the trace, under the gateway's span.
    let access = of_request
        .iter()
        .find(|r| r["service"] == "api-gateway" && r["message"] == "request")
        .unwrap_or_else(|| panic!("no access line with the trace in {of_request:#?}"));
    assert_eq!(access["fields"]["request_id"], "trace-test-1");
    let gateway_span = access["fields"]["span_id"].as_str().unwrap();
    assert!(![CLIENT_SPAN, service_span].contains(&gateway_span));
    // The diary service's line for the call, with the same request id and trace, under the
    // span its event names; the user service's check that the writer exists, under its own.
    let call = |service: &str, method: &str| {
        of_request
            .iter()
            .find(|r| {
                r["service"] == service && r["message"] == "call" && r["fields"]["method"] == method
            })
            .unwrap_or_else(|| panic!("no {service} {method} line in {of_request:#?}"))
    };
    let create = call("diary-service", "CreateEntry");
    assert_eq!(create["fields"]["request_id"], "trace-test-1");
    assert_eq!(create["fields"]["code"], "OK");
    assert_eq!(create["fields"]["span_id"], service_span);
    let lookup = call("user-service", "GetUser");
    assert_eq!(lookup["fields"]["trace_id"], TRACE_ID);
    assert_eq!(lookup["fields"]["request_id"], "trace-test-1");
    assert!(
        ![CLIENT_SPAN, service_span, gateway_span]
            .contains(&lookup["fields"]["span_id"].as_str().unwrap()),
        "{lookup}"
    );
    // Every line of the trace names it and a span; none of another request's trace mixes in.
    for record in &of_request {
        assert_eq!(
            record["fields"]["span_id"].as_str().map(str::len),
            Some(16),
            "{record}"
        );
    }
}
