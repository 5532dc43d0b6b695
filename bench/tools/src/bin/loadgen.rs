//! A small closed-loop HTTP/1.1 load generator for bench/run.sh: `--conc` workers, each on its own
//! keep-alive connection, send one request after another until the work list is used up or
//! `--duration` seconds have passed (whichever is first). One OS thread, like `wrk -t1`.
//!
//! Modes:
//!   mint      GET --url (with --header 'Cookie: …'); expects 302 and writes the `--param` query
//!             parameter of each Location to --out (authorization codes). Stops at --max.
//!   list      POST --template with `{}` replaced by each line of --in, each line used exactly
//!             once (code → token exchange); expects 200.
//!   fixed     the same request over and over (like wrk): GET, or POST --template verbatim with
//!             --method POST; any 2xx counts. bench/run.sh uses it only when wrk is missing.
//!   chain     every worker takes one line of --in and loops: POST --template with `{}` = its
//!             current value, then takes --json-field from the 200 response as the next value
//!             (refresh-token rotation). The last value of each chain goes to --out.
//!
//! Prints one JSON object: completed, errors, elapsed_s, rate_per_s, latency_ms {p50,p90,p99,max},
//! status counts and the first errors. Exit code 0 even with errors (the caller reads the JSON).
//! Refuses any host that is not loopback.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

struct Args {
    mode: String,
    url: url::Url,
    headers: Vec<(String, String)>,
    template: String,
    content_type: String,
    input: Option<String>,
    out: Option<String>,
    param: String,
    json_field: String,
    method: String,
    conc: usize,
    duration: f64,
    max: usize,
}

fn usage(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    eprintln!(
        "usage: loadgen (mint|list|fixed|chain) --url URL [--method GET|POST] [--header 'K: V']... [--template BODY] \
         [--content-type T] [--in FILE] [--out FILE] [--param code] [--json-field refresh_token] \
         [--conc 16] [--duration 10] [--max 1000000]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mode = it.next().unwrap_or_else(|| usage("no mode"));
    if !matches!(mode.as_str(), "mint" | "list" | "fixed" | "chain") {
        usage(&format!("unknown mode {mode}"));
    }
    let mut a = Args {
        mode,
        url: url::Url::parse("http://127.0.0.1/").unwrap_or_else(|_| usage("url")),
        headers: Vec::new(),
        template: String::new(),
        content_type: "application/x-www-form-urlencoded".to_owned(),
        input: None,
        out: None,
        param: "code".to_owned(),
        json_field: "refresh_token".to_owned(),
        method: "GET".to_owned(),
        conc: 16,
        duration: 10.0,
        max: 1_000_000,
    };
    let mut have_url = false;
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--url" => {
                a.url = url::Url::parse(&value()).unwrap_or_else(|e| usage(&format!("bad url: {e}")));
                have_url = true;
            }
            "--header" => {
                let h = value();
                let (k, v) = h.split_once(':').unwrap_or_else(|| usage("header is 'K: V'"));
                a.headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            "--template" => a.template = value(),
            "--content-type" => a.content_type = value(),
            "--in" => a.input = Some(value()),
            "--out" => a.out = Some(value()),
            "--param" => a.param = value(),
            "--json-field" => a.json_field = value(),
            "--method" => a.method = value().to_uppercase(),
            "--conc" => a.conc = value().parse().unwrap_or_else(|_| usage("--conc")),
            "--duration" => a.duration = value().parse().unwrap_or_else(|_| usage("--duration")),
            "--max" => a.max = value().parse().unwrap_or_else(|_| usage("--max")),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    if !have_url {
        usage("--url is required");
    }
    match a.url.host_str() {
        Some("127.0.0.1" | "localhost" | "[::1]") => {}
        Some(h) if h.starts_with("127.") => {}
        _ => usage("refusing a non-loopback --url"),
    }
    if a.conc == 0 {
        usage("--conc must be > 0");
    }
    a
}

struct Shared {
    args: Args,
    authority: String,
    path_and_query: String,
    items: Vec<String>,
    next: Cell<usize>,
    deadline: Instant,
    lat_us: RefCell<Vec<u32>>,
    errors: Cell<usize>,
    first_errors: RefCell<Vec<String>>,
    statuses: RefCell<BTreeMap<u16, usize>>,
    results: RefCell<Vec<String>>,
    minted: Cell<usize>,
}

impl Shared {
    fn error(&self, msg: String) {
        self.errors.set(self.errors.get() + 1);
        let mut first = self.first_errors.borrow_mut();
        if first.len() < 3 {
            first.push(msg);
        }
    }
}

async fn connect(shared: &Shared) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(&shared.authority)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request; returns (status, Location header, body).
async fn send(
    shared: &Shared,
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    body: Option<String>,
) -> Result<(u16, Option<String>, Bytes), String> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *sender = Some(connect(shared).await?);
    }
    let s = sender.as_mut().ok_or("no connection")?;
    s.ready().await.map_err(|e| format!("ready: {e}"))?;
    let method = if body.is_some() { "POST" } else { "GET" };
    let mut req = Request::builder()
        .method(method)
        .uri(&shared.path_and_query)
        .header("host", &shared.authority);
    for (k, v) in &shared.args.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if body.is_some() {
        req = req.header("content-type", &shared.args.content_type);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let resp = match s.send_request(req).await {
        Ok(r) => r,
        Err(e) => {
            *sender = None;
            return Err(format!("send: {e}"));
        }
    };
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, location, bytes))
}

fn take_item(shared: &Shared) -> Option<usize> {
    let i = shared.next.get();
    if i >= shared.items.len() {
        return None;
    }
    shared.next.set(i + 1);
    Some(i)
}

async fn worker(shared: Rc<Shared>, id: usize) {
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut chain_value: Option<String> = None;
    if shared.args.mode == "chain" {
        chain_value = shared.items.get(id).cloned();
        if chain_value.is_none() {
            return;
        }
    }
    loop {
        if Instant::now() >= shared.deadline {
            break;
        }
        let body = match shared.args.mode.as_str() {
            "mint" => {
                // reserve a slot so that at most --max codes are minted
                if shared.next.get() >= shared.args.max {
                    break;
                }
                shared.next.set(shared.next.get() + 1);
                None
            }
            "list" => match take_item(&shared) {
                Some(i) => Some(shared.args.template.replace("{}", &shared.items[i])),
                None => break,
            },
            "fixed" => (shared.args.method == "POST").then(|| shared.args.template.clone()),
            _ => Some(
                shared
                    .args
                    .template
                    .replace("{}", chain_value.as_deref().unwrap_or_default()),
            ),
        };
        let started = Instant::now();
        let result = send(&shared, &mut sender, body).await;
        let micros = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
        match result {
            Err(e) => {
                shared.error(e);
                if shared.args.mode == "chain" {
                    break;
                }
            }
            Ok((status, location, bytes)) => {
                *shared.statuses.borrow_mut().entry(status).or_default() += 1;
                match shared.args.mode.as_str() {
                    "mint" => {
                        let code = location.as_deref().and_then(|loc| {
                            shared.args.url.join(loc).ok().and_then(|u| {
                                u.query_pairs()
                                    .find(|(k, _)| k == shared.args.param.as_str())
                                    .map(|(_, v)| v.into_owned())
                            })
                        });
                        match (status, code) {
                            (302 | 303, Some(code)) => {
                                shared.lat_us.borrow_mut().push(micros);
                                shared.results.borrow_mut().push(code);
                                shared.minted.set(shared.minted.get() + 1);
                            }
                            _ => shared.error(format!(
                                "mint: {status} location={location:?} {}",
                                String::from_utf8_lossy(&bytes[..bytes.len().min(160)])
                            )),
                        }
                    }
                    "list" | "fixed" => {
                        let ok = if shared.args.mode == "list" {
                            status == 200
                        } else {
                            (200..300).contains(&status)
                        };
                        if ok {
                            shared.lat_us.borrow_mut().push(micros);
                        } else {
                            shared.error(format!(
                                "{status} {}",
                                String::from_utf8_lossy(&bytes[..bytes.len().min(160)])
                            ));
                        }
                    }
                    _ => {
                        let next = (status == 200)
                            .then(|| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                            .flatten()
                            .and_then(|v| {
                                v.get(shared.args.json_field.as_str())
                                    .and_then(|f| f.as_str())
                                    .map(str::to_owned)
                            });
                        match next {
                            Some(next) => {
                                shared.lat_us.borrow_mut().push(micros);
                                chain_value = Some(next);
                            }
                            None => {
                                shared.error(format!(
                                    "{status} {}",
                                    String::from_utf8_lossy(&bytes[..bytes.len().min(160)])
                                ));
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(v) = chain_value
        && shared.args.mode == "chain"
    {
        shared.results.borrow_mut().push(v);
    }
}

fn pct(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = i.clamp(1, sorted.len()) - 1;
    Some((sorted[i] as f64 / 10.0).round() / 100.0)
}

fn main() {
    let args = parse_args();
    let items: Vec<String> = match &args.input {
        Some(path) => std::fs::read_to_string(path)
            .unwrap_or_else(|e| usage(&format!("cannot read {path}: {e}")))
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    if matches!(args.mode.as_str(), "list" | "chain") && items.is_empty() {
        usage("--in is empty");
    }
    let host = args.url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = args.url.port_or_known_default().unwrap_or(80);
    let authority = format!("{host}:{port}");
    let mut path_and_query = args.url.path().to_owned();
    if let Some(q) = args.url.query() {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    let conc = args.conc;
    let duration = Duration::from_secs_f64(args.duration);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| usage(&format!("runtime: {e}")));
    let local = tokio::task::LocalSet::new();
    let started = Instant::now();
    let shared = Rc::new(Shared {
        args,
        authority,
        path_and_query,
        items,
        next: Cell::new(0),
        deadline: started + duration,
        lat_us: RefCell::new(Vec::new()),
        errors: Cell::new(0),
        first_errors: RefCell::new(Vec::new()),
        statuses: RefCell::new(BTreeMap::new()),
        results: RefCell::new(Vec::new()),
        minted: Cell::new(0),
    });
    let s2 = shared.clone();
    let elapsed = local.block_on(&runtime, async move {
        let t0 = Instant::now();
        let handles: Vec<_> = (0..conc)
            .map(|id| tokio::task::spawn_local(worker(s2.clone(), id)))
            .collect();
        for h in handles {
            let _ = h.await;
        }
        t0.elapsed()
    });

    if let Some(out) = &shared.args.out {
        let results = shared.results.borrow();
        let mut text = results.join("\n");
        text.push('\n');
        if let Err(e) = std::fs::write(out, text) {
            eprintln!("loadgen: cannot write {out}: {e}");
        }
    }
    let mut lat = shared.lat_us.borrow().clone();
    lat.sort_unstable();
    let secs = elapsed.as_secs_f64();
    let summary = serde_json::json!({
        "mode": shared.args.mode,
        "conc": conc,
        "completed": lat.len(),
        "errors": shared.errors.get(),
        "items": shared.items.len(),
        "elapsed_s": (secs * 1000.0).round() / 1000.0,
        "rate_per_s": ((lat.len() as f64 / secs) * 10.0).round() / 10.0,
        "latency_ms": {
            "p50": pct(&lat, 50.0),
            "p90": pct(&lat, 90.0),
            "p99": pct(&lat, 99.0),
            "max": lat.last().map(|m| (*m as f64 / 10.0).round() / 100.0),
        },
        "statuses": shared.statuses.borrow().iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "first_errors": *shared.first_errors.borrow(),
    });
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{summary}");
}
