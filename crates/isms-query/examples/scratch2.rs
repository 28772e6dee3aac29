fn main() {
    for t in [jiff::Timestamp::MIN, jiff::Timestamp::MAX, jiff::Timestamp::from_second(-62135596800).unwrap(), jiff::Timestamp::from_second(-62135596801).unwrap()] {
        let m = t.as_microsecond();
        let back = jiff::Timestamp::from_microsecond(m).unwrap();
        let s = back.to_string();
        println!("{s} -> {:?}", isms_event::parse_time(&s).map(isms_event::micros_of).map(|x| x == m));
    }
}
