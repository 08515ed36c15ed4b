//! PWM on the Raspberry Pi's GPIO pins (a LED strip or lamp through a MOSFET):
//! each configured pin is a one-channel fixture whose value sets the duty
//! cycle. The pins are rppal's software PWM, behind the `gpio` cargo feature;
//! tests drive a mock pin.

use std::io;

use super::Transport;

/// One PWM output.
pub trait PwmPin: Send {
    /// `duty` in 0..=1.
    fn set_duty(&mut self, duty: f64) -> io::Result<()>;
}

/// One pin and the frame channel it shows.
struct Output {
    bcm: u8,
    offset: usize,
    pin: Box<dyn PwmPin>,
    last: Option<u8>,
}

/// The configured pins, each showing one channel of the frame.
pub struct Gpio {
    pins: Vec<Output>,
}

impl Gpio {
    /// `(BCM pin number, frame offset, pin)` for each pin.
    pub fn new(pins: Vec<(u8, usize, Box<dyn PwmPin>)>) -> Self {
        Self {
            pins: pins
                .into_iter()
                .map(|(bcm, offset, pin)| Output {
                    bcm,
                    offset,
                    pin,
                    last: None,
                })
                .collect(),
        }
    }
}

impl Transport for Gpio {
    fn name(&self) -> &str {
        "lights:gpio"
    }

    fn target(&self) -> String {
        let pins: Vec<String> = self.pins.iter().map(|p| p.bcm.to_string()).collect();
        format!("GPIO {}", pins.join(", "))
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let mut result = Ok(());
        for p in &mut self.pins {
            let v = frame.get(p.offset).copied().unwrap_or(0);
            // Software PWM restarts its period on every change: only send changes.
            if p.last == Some(v) {
                continue;
            }
            match p.pin.set_duty(f64::from(v) / 255.0) {
                Ok(()) => p.last = Some(v),
                Err(e) => result = Err(e),
            }
        }
        result
    }
}

/// rppal's software PWM on a BCM-numbered pin.
#[cfg(feature = "gpio")]
pub struct RppalPin {
    pin: rppal::gpio::OutputPin,
    frequency_hz: f64,
}

#[cfg(feature = "gpio")]
impl RppalPin {
    pub fn open(bcm: u8, frequency_hz: f64) -> io::Result<Self> {
        let gpio = rppal::gpio::Gpio::new()
            .map_err(|e| io::Error::other(format!("cannot open the GPIO chip: {e}")))?;
        let pin = gpio
            .get(bcm)
            .map_err(|e| io::Error::other(format!("GPIO {bcm}: {e}")))?
            .into_output_low();
        Ok(Self { pin, frequency_hz })
    }
}

#[cfg(feature = "gpio")]
impl PwmPin for RppalPin {
    fn set_duty(&mut self, duty: f64) -> io::Result<()> {
        let duty = duty.clamp(0.0, 1.0);
        let r = if duty <= 0.0 {
            self.pin.clear_pwm().map(|_| self.pin.set_low())
        } else {
            self.pin.set_pwm_frequency(self.frequency_hz, duty)
        };
        r.map_err(|e| io::Error::other(format!("PWM: {e}")))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records every duty cycle it is given.
    #[derive(Clone, Default)]
    pub(crate) struct MockPin(pub Arc<Mutex<Vec<f64>>>);

    impl PwmPin for MockPin {
        fn set_duty(&mut self, duty: f64) -> io::Result<()> {
            self.0.lock().unwrap().push(duty);
            Ok(())
        }
    }

    #[test]
    fn pins_follow_their_channel_and_skip_repeats() {
        let pin = MockPin::default();
        let mut gpio = Gpio::new(vec![(18, 1, Box::new(pin.clone()))]);
        gpio.send(&[9, 0]).unwrap();
        gpio.send(&[9, 255]).unwrap();
        gpio.send(&[0, 255]).unwrap();
        gpio.send(&[0, 51]).unwrap();
        assert_eq!(*pin.0.lock().unwrap(), [0.0, 1.0, 0.2]);
    }
}
