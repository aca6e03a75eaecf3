//! `docker-credential-berth`: the docker credential helper (`credHelpers` in docker's
//! `config.json`); the same as `berth credential-helper <action>`. See
//! `berth::credential_helper`.

fn main() {
    let action = std::env::args().nth(1);
    std::process::exit(berth::credential_helper::main(action.as_deref()));
}
