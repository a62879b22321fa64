fn main() { println!("tether: under construction"); }
