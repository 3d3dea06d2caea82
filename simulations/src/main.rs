//! Network and load simulations for Portico. The NAT matrix, the server load simulation and
//! the media benchmark land with their issues; see docs/performance.md.

fn main() {
    println!("portico-simulations: no simulation is implemented yet; see docs/performance.md");
}
