//! `config::Config::load` from a TOML file with the input as its content
//! (no environment, no overrides). A configuration that loads must also
//! load again from what `to_toml` renders (what `flowgate config show`
//! prints), to the same value.

use flowgate::config::{Config, Sources};

#[path = "scratch.rs"]
mod scratch;

fn main() {
    let file = scratch::path("config.toml");
    let again = scratch::path("again.toml");
    afl::fuzz!(|data: &[u8]| {
        scratch::write(&file, data);
        let src = Sources {
            file: Some(file.clone()),
            overrides: Vec::new(),
            env: false,
        };
        let Ok(cfg) = Config::load(&src) else {
            return;
        };
        let shown = cfg.to_toml();
        scratch::write(&again, shown.as_bytes());
        let back = Config::load(&Sources {
            file: Some(again.clone()),
            overrides: Vec::new(),
            env: false,
        })
        .unwrap_or_else(|e| panic!("to_toml output does not load: {e}\n{shown}"));
        assert_eq!(back, cfg, "to_toml round trip changed the configuration");
    });
}
