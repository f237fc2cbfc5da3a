fn main() { println!("web: placeholder"); }
