//! `mcpauth`: the command line. Parses flags, loads settings and hands off to the library
//! (serving, schema) or to [`admin`] (users, clients, grants, audit log).

mod admin;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use admin::{Admin, NewClient, Output};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use mcpauth_server::observability::{self, LogFormat};
use mcpauth_server::{Application, FlagOverrides, Settings, open_store_with, shutdown_signal};

/// OAuth 2.1 authorization server for MCP clients.
#[derive(Parser)]
#[command(name = "mcpauth", version, about)]
struct Cli {
    /// Configuration file (default: ./mcpauth.toml when present).
    #[arg(long, global = true, env = "MCPAUTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL, e.g. sqlite://mcpauth.db or postgres://user@host/mcpauth.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates an empty database first).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:3000 (port 0 picks a free port).
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// Public origin clients reach the server at, e.g. https://auth.example.com.
        #[arg(long, value_name = "URL")]
        issuer: Option<String>,
        /// Redis for rate limits shared by every instance, e.g. redis://127.0.0.1:6379.
        #[arg(long, value_name = "URL")]
        redis_url: Option<String>,
        /// An existing MCP server (Streamable HTTP) to protect at /api/mcp instead of the demo,
        /// e.g. http://127.0.0.1:8080/mcp.
        #[arg(long, value_name = "URL")]
        upstream: Option<String>,
    },
    /// Create or update the database schema (idempotent).
    Migrate,
    /// Print the SQL schema.
    Generate {
        #[arg(long, value_enum, default_value_t = Dialect::Sqlite)]
        dialect: Dialect,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage OAuth clients.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// List and revoke the grants users have given clients.
    Grant {
        #[command(subcommand)]
        command: GrantCommand,
    },
    /// Read the security audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Write a consistent copy of a live SQLite database to a new file (servers keep running).
    /// For PostgreSQL use pg_dump (see the README's "Backups").
    Backup {
        /// The backup file to create (it must not exist).
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Exit 0 when the server `serve` would run with these settings answers GET /healthz
    /// (on loopback when it binds 0.0.0.0): the container image's HEALTHCHECK (no curl there).
    Healthcheck,
    /// Manage the id_token signing keys and the vault keys of connected accounts.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// List and delete users' connected accounts (`[[connections]]`).
    Connection {
        #[command(subcommand)]
        command: ConnectionCommand,
    },
}

#[derive(Subcommand)]
enum ConnectionCommand {
    /// A user's connected services (no token is ever shown).
    List {
        /// The user's email or id.
        #[arg(long, value_name = "EMAIL|ID", allow_hyphen_values = true)]
        email: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disconnect a user's service: revoke its grant at the provider where it can, then
    /// delete the stored tokens.
    Delete {
        /// The user's email or id.
        #[arg(long, value_name = "EMAIL|ID", allow_hyphen_values = true)]
        email: String,
        /// The connection's id (`github`).
        #[arg(long, value_name = "ID")]
        connection: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new signing key and retire the current one (it stays published until its tokens
    /// have expired).
    Rotate {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the signing keys, newest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-seal every connected account's tokens under the current vault key (the first of
    /// MCPAUTH_VAULT_KEY / vault_key_file; the old key must still be listed after it).
    RotateVault {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a new random vault key (for MCPAUTH_VAULT_KEY or vault_key_file).
    GenerateVaultKey,
}

#[derive(Clone, Copy, ValueEnum)]
enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user with an email and password.
    Create {
        #[arg(long)]
        email: String,
        /// The password; read from standard input when omitted.
        #[arg(long, env = "MCPAUTH_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Print the created user as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password (admins, for a user who cannot reset it by email): ends every
    /// session of theirs and, with `revoke_grants_on_password_change`, disconnects every app.
    ResetPassword {
        /// The user's email (or id).
        #[arg(long, value_name = "EMAIL|ID", allow_hyphen_values = true)]
        email: String,
        /// The new password; read from standard input when omitted.
        #[arg(
            long,
            env = "MCPAUTH_PASSWORD",
            hide_env_values = true,
            conflicts_with = "password_stdin"
        )]
        password: Option<String>,
        /// Read the new password from standard input (the default without --password).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List every user, oldest first.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Lock a user out: no sign-in, and their sessions and tokens stop working.
    Disable {
        /// The user's email or id.
        #[arg(value_name = "EMAIL|ID", allow_hyphen_values = true)]
        user: String,
    },
    /// Let a disabled user back in.
    Enable {
        /// The user's email or id.
        #[arg(value_name = "EMAIL|ID", allow_hyphen_values = true)]
        user: String,
    },
    /// Make a user an admin of the console (`{base_path}/admin`), or take it back with
    /// --revoke. Admins named in the configuration's `admins` need no command.
    Admin {
        /// The user's email (or id).
        #[arg(long, value_name = "EMAIL|ID", allow_hyphen_values = true)]
        email: String,
        /// Take the console away from the user instead.
        #[arg(long)]
        revoke: bool,
    },
    /// Delete a user with their sessions, consents and grants (needs --yes).
    Delete {
        /// The user's email or id.
        #[arg(value_name = "EMAIL|ID", allow_hyphen_values = true)]
        user: String,
        /// Confirm the deletion; it cannot be undone.
        #[arg(long, short)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// List every client, oldest first.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Register a client; a confidential client's secret is shown only this once.
    Create {
        /// Display name, shown on the consent page.
        #[arg(long)]
        name: String,
        /// Where the client may be sent back to (repeat for several); not needed by a machine
        /// (`--grant client_credentials` alone).
        #[arg(
            long = "redirect-uri",
            value_name = "URI",
            required_unless_present = "grants"
        )]
        redirect_uris: Vec<String>,
        /// A grant the client may use (repeat for several): authorization_code, refresh_token,
        /// client_credentials (a machine: no user, no redirect URI) or
        /// urn:ietf:params:oauth:grant-type:jwt-bearer. Default: authorization_code and
        /// refresh_token.
        #[arg(long = "grant", value_name = "GRANT", value_parser = parse_grant)]
        grants: Vec<mcpauth_core::model::GrantType>,
        /// For a machine: the scopes it may be given, space-separated (default the server's
        /// mcp_scopes).
        #[arg(long)]
        scope: Option<String>,
        /// For a machine: a resource it may get tokens for (repeat for several; default all).
        #[arg(long = "resource", value_name = "URI")]
        resources: Vec<String>,
        /// A public client: no secret, PKCE only (default: confidential, client_secret_basic).
        #[arg(long)]
        public: bool,
        /// Trusted: do not ask users for consent.
        #[arg(long)]
        skip_consent: bool,
        /// Print the client (and its secret) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a client: it can neither obtain nor use tokens.
    Disable {
        #[arg(value_name = "CLIENT_ID", allow_hyphen_values = true)]
        client_id: String,
    },
    /// Let a disabled client work again.
    Enable {
        #[arg(value_name = "CLIENT_ID", allow_hyphen_values = true)]
        client_id: String,
    },
    /// Delete a client and every token issued to it (needs --yes).
    Delete {
        #[arg(value_name = "CLIENT_ID", allow_hyphen_values = true)]
        client_id: String,
        /// Confirm the deletion; it cannot be undone.
        #[arg(long, short)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum GrantCommand {
    /// List live grants, newest first.
    List {
        /// Only this user's grants (email or id).
        #[arg(long, value_name = "EMAIL|ID", allow_hyphen_values = true)]
        user: Option<String>,
        /// Only grants to this client.
        #[arg(long, value_name = "CLIENT_ID", allow_hyphen_values = true)]
        client: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a user's grants (all, or one client's): their tokens stop working at once.
    Revoke {
        /// The user (email or id).
        #[arg(long, value_name = "EMAIL|ID", allow_hyphen_values = true)]
        user: String,
        /// Only the grants to this client.
        #[arg(long, value_name = "CLIENT_ID", allow_hyphen_values = true)]
        client: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Show the newest security events, newest first.
    List {
        /// How many events to show.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let code = match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            match observability::log_format() {
                LogFormat::Text => {
                    observability::flush_logs();
                    eprintln!("error: {error:#}");
                }
                // A log shipper reading standard error sees only JSON.
                LogFormat::Json => tracing::error!(error = format!("{error:#}"), "mcpauth failed"),
            }
            std::process::ExitCode::FAILURE
        }
    };
    observability::flush_logs();
    code
}

/// Loads the settings and starts logging in their `log_format` (text until then).
fn load_settings(config: Option<&Path>, flags: FlagOverrides) -> anyhow::Result<Settings> {
    let settings = Settings::load(config, flags);
    let format = match &settings {
        Ok(settings) => settings.log_format,
        Err(_) => LogFormat::Text,
    };
    observability::init_logging(format);
    settings
}

/// Says where the server is and how to point a client at it: a banner for people on standard
/// output, or with `log_format = "json"` one JSON event there, shaped like the log's lines (a
/// log shipper reading standard output and error together sees only JSON).
fn announce(app: &Application, settings: &Settings) -> anyhow::Result<()> {
    let issuer = app.issuer();
    let options = app.auth().options();
    let endpoints: Vec<&str> = std::iter::once(options.resource.as_str())
        .chain(
            options
                .resources
                .iter()
                .map(|other| other.resource.as_str()),
        )
        .collect();
    let upstreams: Vec<&str> = settings
        .upstream
        .iter()
        .chain(settings.upstreams.iter().map(|u| &u.url))
        .map(String::as_str)
        .collect();
    let sign_up = options.password_login.then(|| format!("{issuer}/sign-up"));
    // What to register at each identity provider as its redirect (callback) URI.
    let providers: Vec<(&str, String)> = options
        .identity_providers
        .iter()
        .map(|provider| {
            let callback = format!("{issuer}{}/callback/{}", options.base_path, provider.id);
            (provider.name.as_str(), callback)
        })
        .collect();
    // What to register at each connected service as its redirect (callback) URI.
    let connections: Vec<(&str, String)> = app
        .auth()
        .connections()
        .configured()
        .map(|c| {
            (
                c.name.as_str(),
                app.auth().connections().redirect_uri(&c.id),
            )
        })
        .collect();
    let database = mcpauth_server::redact_password(&settings.database_url);
    let cache = &options.token_cache;
    let metrics = app
        .metrics_address()
        .map(|metrics| format!("http://{metrics}/metrics"));
    // What was logged while starting (where mail goes, warnings) comes out before the banner.
    observability::flush_logs();
    if observability::log_format() == LogFormat::Json {
        // Lists as space-separated URLs (a URL holds no space).
        let callbacks: Vec<&str> = providers.iter().map(|(_, uri)| uri.as_str()).collect();
        let connection_callbacks: Vec<&str> =
            connections.iter().map(|(_, uri)| uri.as_str()).collect();
        let join = |items: &[&str]| (!items.is_empty()).then(|| items.join(" "));
        observability::json_on_stdout(|| {
            tracing::info!(
                issuer,
                mcp_endpoints = endpoints.join(" "),
                upstreams = join(&upstreams),
                sign_up,
                redirect_uris = join(&callbacks),
                connection_redirect_uris = join(&connection_callbacks),
                listening_on = %app.address(),
                database,
                token_cache_capacity = cache.capacity,
                token_cache_revocation_check_ms = cache.revocation_check_interval.as_millis() as u64,
                metrics,
                rate_limits = app.rate_limits(),
                "mcpauth is ready"
            );
        });
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "mcpauth is ready")?;
    writeln!(out, "  Issuer:        {issuer}")?;
    for endpoint in &endpoints {
        writeln!(out, "  MCP endpoint:  {endpoint}")?;
    }
    for upstream in &upstreams {
        writeln!(out, "  Upstream:      {upstream}")?;
    }
    if let Some(sign_up) = &sign_up {
        writeln!(out, "  Sign up:       {sign_up}")?;
    }
    for (name, callback) in &providers {
        writeln!(out, "  Sign-in with:  {name} (redirect URI {callback})")?;
    }
    for (name, callback) in &connections {
        writeln!(out, "  Connect:       {name} (redirect URI {callback})")?;
    }
    writeln!(out, "  Listening on:  {}", app.address())?;
    writeln!(out, "  Database:      {database}")?;
    if cache.capacity == 0 {
        writeln!(out, "  Token cache:   off")?;
    } else {
        writeln!(
            out,
            "  Token cache:   up to {} tokens; revocations by other processes apply within {} ms",
            cache.capacity,
            cache.revocation_check_interval.as_millis()
        )?;
    }
    if let Some(metrics) = &metrics {
        writeln!(out, "  Metrics:       {metrics}")?;
    }
    writeln!(out, "  Rate limits:   {}", app.rate_limits())?;
    writeln!(
        out,
        "Point an MCP client at the MCP endpoint; press Ctrl-C to stop."
    )?;
    out.flush()?;
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut flags = FlagOverrides {
        database_url: cli.database_url,
        ..FlagOverrides::default()
    };
    match cli.command {
        Command::Serve {
            bind,
            issuer,
            redis_url,
            upstream,
        } => {
            flags.bind = bind;
            flags.issuer = issuer;
            flags.redis_url = redis_url;
            flags.upstream = upstream;
            let settings = load_settings(cli.config.as_deref(), flags)?;
            let app = Application::build(&settings, None).await?;
            // Listening for signals from before the announcement on.
            let shutdown = shutdown_signal();
            announce(&app, &settings)?;
            app.run_until(shutdown).await?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Healthcheck => {
            let settings = load_settings(cli.config.as_deref(), flags)?;
            mcpauth_server::health_check(&settings.bind, std::time::Duration::from_secs(5))
        }
        Command::Migrate => {
            let settings = load_settings(cli.config.as_deref(), flags)?;
            open_store_with(&settings.database_url, &settings.database).await?;
            println!(
                "database is up to date: {}",
                mcpauth_server::redact_password(&settings.database_url)
            );
            Ok(())
        }
        Command::Backup { output } => {
            let settings = load_settings(cli.config.as_deref(), flags)?;
            let url = &settings.database_url;
            if !url.starts_with("sqlite:") {
                anyhow::bail!(
                    "mcpauth backup copies SQLite databases; for PostgreSQL use pg_dump \
                     (pg_dump --format=custom --file=FILE DATABASE_URL, restored with pg_restore)"
                );
            }
            mcpauth_store::backup_sqlite(url, &output)
                .await
                .with_context(|| format!("could not back up {url}"))?;
            println!("backed up {url} to {}", output.display());
            Ok(())
        }
        Command::Generate { dialect, output } => {
            let sql = match dialect {
                Dialect::Sqlite => mcpauth_store::sqlite_schema_sql(),
                Dialect::Postgres => mcpauth_store::pg_schema_sql(),
            };
            match output {
                Some(path) => std::fs::write(&path, sql)
                    .with_context(|| format!("could not write {}", path.display()))?,
                None => print!("{sql}"),
            }
            Ok(())
        }
        Command::User { command } => {
            let admin = Admin::open(load_settings(cli.config.as_deref(), flags)?).await?;
            match command {
                UserCommand::Create {
                    email,
                    password,
                    name,
                    json,
                } => {
                    let password = match password {
                        Some(password) => password,
                        None => {
                            let mut input = String::new();
                            std::io::stdin().read_to_string(&mut input)?;
                            input.trim_end_matches(['\r', '\n']).to_owned()
                        }
                    };
                    admin
                        .create_user(
                            &email,
                            &password,
                            name.as_deref(),
                            Output::from_json_flag(json),
                        )
                        .await
                }
                UserCommand::ResetPassword {
                    email,
                    password,
                    password_stdin: _,
                } => {
                    let password = match password {
                        Some(password) => password,
                        None => {
                            let mut input = String::new();
                            std::io::stdin().read_to_string(&mut input)?;
                            input.trim_end_matches(['\r', '\n']).to_owned()
                        }
                    };
                    admin.reset_password(&email, &password).await
                }
                UserCommand::List { json } => admin.list_users(Output::from_json_flag(json)).await,
                UserCommand::Disable { user } => admin.set_user_disabled(&user, true).await,
                UserCommand::Enable { user } => admin.set_user_disabled(&user, false).await,
                UserCommand::Delete { user, yes } => admin.delete_user(&user, yes).await,
                UserCommand::Admin { email, revoke } => admin.set_admin(&email, !revoke).await,
            }
        }
        Command::Client { command } => {
            let admin = Admin::open(load_settings(cli.config.as_deref(), flags)?).await?;
            match command {
                ClientCommand::List { json } => {
                    admin.list_clients(Output::from_json_flag(json)).await
                }
                ClientCommand::Create {
                    name,
                    redirect_uris,
                    grants,
                    scope,
                    resources,
                    public,
                    skip_consent,
                    json,
                } => {
                    let new = NewClient {
                        name,
                        redirect_uris,
                        public,
                        skip_consent,
                        grants,
                        scope,
                        resources,
                    };
                    admin.create_client(new, Output::from_json_flag(json)).await
                }
                ClientCommand::Disable { client_id } => {
                    admin.set_client_disabled(&client_id, true).await
                }
                ClientCommand::Enable { client_id } => {
                    admin.set_client_disabled(&client_id, false).await
                }
                ClientCommand::Delete { client_id, yes } => {
                    admin.delete_client(&client_id, yes).await
                }
            }
        }
        Command::Grant { command } => {
            let admin = Admin::open(load_settings(cli.config.as_deref(), flags)?).await?;
            match command {
                GrantCommand::List { user, client, json } => {
                    admin
                        .list_grants(
                            user.as_deref(),
                            client.as_deref(),
                            Output::from_json_flag(json),
                        )
                        .await
                }
                GrantCommand::Revoke { user, client } => {
                    admin.revoke_grants(&user, client.as_deref()).await
                }
            }
        }
        Command::Keys {
            command: KeysCommand::GenerateVaultKey,
        } => {
            // Needs no database, nor any setting.
            println!("{}", mcpauth_core::vault::VaultKey::generate().1);
            Ok(())
        }
        Command::Keys { command } => {
            let admin = Admin::open(load_settings(cli.config.as_deref(), flags)?).await?;
            match command {
                KeysCommand::Rotate { json } => {
                    admin.rotate_keys(Output::from_json_flag(json)).await
                }
                KeysCommand::List { json } => admin.list_keys(Output::from_json_flag(json)).await,
                KeysCommand::RotateVault { json } => {
                    admin.rotate_vault(Output::from_json_flag(json)).await
                }
                // Answered above, before any database is opened.
                KeysCommand::GenerateVaultKey => Ok(()),
            }
        }
        Command::Connection { command } => {
            let admin = Admin::open(load_settings(cli.config.as_deref(), flags)?).await?;
            match command {
                ConnectionCommand::List { email, json } => {
                    admin
                        .list_connections(&email, Output::from_json_flag(json))
                        .await
                }
                ConnectionCommand::Delete { email, connection } => {
                    admin.delete_connection(&email, &connection).await
                }
            }
        }
        Command::Audit { command } => {
            let admin = Admin::open(load_settings(cli.config.as_deref(), flags)?).await?;
            match command {
                AuditCommand::List { limit, json } => {
                    admin.list_audit(limit, Output::from_json_flag(json)).await
                }
            }
        }
    }
}

/// A `--grant` value: an RFC 7591 grant type name.
fn parse_grant(raw: &str) -> Result<mcpauth_core::model::GrantType, String> {
    mcpauth_core::model::GrantType::parse(raw).ok_or_else(|| {
        format!(
            "{raw:?} is not a grant type; use authorization_code, refresh_token, client_credentials or {}",
            mcpauth_core::model::JWT_BEARER
        )
    })
}
