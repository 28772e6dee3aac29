fn main() {
    for q in std::env::args().skip(1) {
        match isms_query::parse(&q) {
            Ok(p) => println!("{q}\n  => {p:?}\n  => {}", isms_query::to_query_string(&p)),
            Err(e) => println!("{q}\n  !! {e}"),
        }
    }
}
