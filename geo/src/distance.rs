//! Distances on Earth: where regions and clients are, and how far apart.

use serde::{Deserialize, Serialize};

/// Mean Earth radius, km (IUGG).
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A position on Earth, in degrees (WGS 84 as GeoIP databases give it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    /// Latitude, -90..=90 (north positive).
    pub latitude: f64,
    /// Longitude, -180..=180 (east positive).
    pub longitude: f64,
}

impl GeoPoint {
    /// A point from latitude and longitude in degrees.
    pub const fn new(latitude: f64, longitude: f64) -> Self {
        Self { latitude, longitude }
    }

    /// Whether both coordinates are finite and within their ranges (GeoIP data is not trusted).
    pub fn is_valid(&self) -> bool {
        self.latitude.is_finite()
            && self.longitude.is_finite()
            && (-90.0..=90.0).contains(&self.latitude)
            && (-180.0..=180.0).contains(&self.longitude)
    }
}

/// Great-circle distance in km between two points (haversine on a sphere of the mean Earth
/// radius; within 0.5 % of the ellipsoidal distance, which is plenty to rank regions).
pub fn haversine_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lon1) = (a.latitude.to_radians(), a.longitude.to_radians());
    let (lat2, lon2) = (b.latitude.to_radians(), b.longitude.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    // min(1.0): rounding can push h a hair above 1 for antipodal points, and asin would be NaN.
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::{GeoPoint, haversine_km};

    #[test]
    fn known_city_distances() {
        // Reference great-circle distances (spherical Earth), within 0.5 %.
        let cases = [
            ((51.5074, -0.1278), (48.8566, 2.3522), 343.6),       // London - Paris
            ((40.7128, -74.0060), (51.5074, -0.1278), 5570.2),    // New York - London
            ((50.1109, 8.6821), (1.3521, 103.8198), 10_264.0),    // Frankfurt - Singapore
            ((-33.8688, 151.2093), (35.6762, 139.6503), 7_823.0), // Sydney - Tokyo
            ((50.1109, 8.6821), (52.3676, 4.9041), 365.0),        // Frankfurt - Amsterdam
            ((37.7749, -122.4194), (34.0522, -118.2437), 559.1),  // San Francisco - Los Angeles
            ((55.7558, 37.6173), (59.9311, 30.3609), 634.4),      // Moscow - Saint Petersburg
        ];
        for (a, b, expected) in cases {
            let (a, b) = (GeoPoint::new(a.0, a.1), GeoPoint::new(b.0, b.1));
            let got = haversine_km(a, b);
            assert!((got - expected).abs() / expected < 0.005, "{a:?} -> {b:?}: {got} km, expected {expected}");
            assert!((haversine_km(b, a) - got).abs() < 1e-9, "distance is symmetric");
        }
        let p = GeoPoint::new(10.0, 20.0);
        assert!(haversine_km(p, p).abs() < 1e-9);
        // Antipodes: half the circumference, and no NaN from rounding.
        let half = haversine_km(GeoPoint::new(0.0, 0.0), GeoPoint::new(0.0, 180.0));
        assert!((half - std::f64::consts::PI * 6371.0088).abs() < 1e-6, "{half}");
    }

    #[test]
    fn validity() {
        assert!(GeoPoint::new(-90.0, 180.0).is_valid());
        assert!(!GeoPoint::new(90.5, 0.0).is_valid());
        assert!(!GeoPoint::new(0.0, f64::NAN).is_valid());
    }
}
