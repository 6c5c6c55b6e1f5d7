//! Geography: distances between clients and regions.

/// Mean Earth radius, km (IUGG).
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Great-circle distance in km between two (latitude, longitude) points in degrees.
pub(crate) fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::haversine_km;

    #[test]
    fn known_city_distances() {
        // Reference great-circle distances (spherical Earth), within 0.5 %.
        let cases = [
            ((51.5074, -0.1278), (48.8566, 2.3522), 343.6),       // London - Paris
            ((40.7128, -74.0060), (51.5074, -0.1278), 5570.2),    // New York - London
            ((50.1109, 8.6821), (1.3521, 103.8198), 10_264.0),    // Frankfurt - Singapore
            ((-33.8688, 151.2093), (35.6762, 139.6503), 7_823.0), // Sydney - Tokyo
        ];
        for (a, b, expected) in cases {
            let got = haversine_km(a, b);
            assert!((got - expected).abs() / expected < 0.005, "{a:?} -> {b:?}: {got} km, expected {expected}");
        }
        assert!(haversine_km((10.0, 20.0), (10.0, 20.0)).abs() < 1e-9);
    }
}
