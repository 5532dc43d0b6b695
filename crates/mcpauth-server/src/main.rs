//! `mcpauth`: the command line. Parses flags, loads settings and hands off to the library.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use mcpauth::McpAuth;
use mcpauth_server::{Application, FlagOverrides, Settings, open_store, shutdown_signal};

/// OAuth 2.1 authorization server for MCP clients.
#[derive(Parser)]
#[command(name = "mcpauth", version, about)]
struct Cli {
    /// Configuration file (default: ./mcpauth.toml when present).
    #[arg(long, global = true, env = "MCPAUTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL, e.g. sqlite://mcpauth.db.
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
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut flags = FlagOverrides {
        database_url: cli.database_url,
        ..FlagOverrides::default()
    };
    match cli.command {
        Command::Serve { bind, issuer } => {
            flags.bind = bind;
            flags.issuer = issuer;
            let settings = Settings::load(cli.config.as_deref(), flags)?;
            let app = Application::build(&settings, None).await?;
            let issuer = app.issuer().to_owned();
            let options = app.auth().options();
            let mut out = std::io::stdout().lock();
            writeln!(out, "mcpauth is ready")?;
            writeln!(out, "  Issuer:        {issuer}")?;
            writeln!(out, "  MCP endpoint:  {}", options.resource)?;
            writeln!(out, "  Sign up:       {issuer}/sign-up")?;
            writeln!(out, "  Listening on:  {}", app.address())?;
            writeln!(out, "  Database:      {}", settings.database_url)?;
            writeln!(
                out,
                "Point an MCP client at the MCP endpoint; press Ctrl-C to stop."
            )?;
            out.flush()?;
            drop(out);
            app.run_until(shutdown_signal()).await?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Migrate => {
            let settings = Settings::load(cli.config.as_deref(), flags)?;
            open_store(&settings.database_url).await?;
            println!("database is up to date: {}", settings.database_url);
            Ok(())
        }
        Command::Generate { dialect, output } => {
            let sql = match dialect {
                Dialect::Sqlite => mcpauth_store::sqlite_schema_sql(),
                Dialect::Postgres => {
                    anyhow::bail!("the PostgreSQL dialect is not available in this build yet")
                }
            };
            match output {
                Some(path) => std::fs::write(&path, sql)
                    .with_context(|| format!("could not write {}", path.display()))?,
                None => print!("{sql}"),
            }
            Ok(())
        }
        Command::User { command } => match command {
            UserCommand::Create {
                email,
                password,
                name,
            } => {
                let settings = Settings::load(cli.config.as_deref(), flags)?;
                let password = match password {
                    Some(password) => password,
                    None => {
                        let mut input = String::new();
                        std::io::stdin().read_to_string(&mut input)?;
                        input.trim_end_matches(['\r', '\n']).to_owned()
                    }
                };
                let store = open_store(&settings.database_url).await?;
                let auth = McpAuth::new(store, settings.options("http://localhost")?).await?;
                let user = auth
                    .create_user(&email, &password, name.as_deref())
                    .await
                    .map_err(|e| anyhow::anyhow!("could not create the user: {e}"))?;
                println!(
                    "created user {} <{}> (id {})",
                    user.name, user.email, user.id
                );
                Ok(())
            }
        },
    }
}
